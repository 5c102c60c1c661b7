"""Monocular footage in: any clip PyAV decodes (MP4, MOV, WebM, GIF, …) or a folder of images, with its
alpha channel when it has one, sampled to a target frame rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from backend.io.video import VideoError, frame_array, open_video

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"}
SEQUENCE_FPS = 24.0  # an image folder has no rate of its own


@dataclass
class Footage:
    frames: np.ndarray  # (F, H, W, 3) uint8
    alpha: np.ndarray | None  # (F, H, W) float32 in [0, 1], when the source carries a real alpha channel
    fps: float


def read_footage(source: str | Path, fps: float | None = None) -> Footage:
    """Decode a clip file or an image folder; with ``fps``, resample (nearest frame) to that rate."""
    source = Path(source)
    footage = _read_images(source) if source.is_dir() else _read_clip(source)
    return resample(footage, fps) if fps else footage


def _read_clip(path: Path) -> Footage:
    with open_video(path) as (container, stream, rate):
        rgba = [frame_array(frame, "rgba") for frame in container.decode(stream)]
    if not rgba:
        raise VideoError(f"{path}: the clip has no frames")
    return _split(np.stack(rgba), rate)


def _read_images(folder: Path) -> Footage:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise VideoError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    images = []
    for file in files:
        try:
            with Image.open(file) as image:
                images.append(np.asarray(image.convert("RGBA")))
        except OSError as error:
            raise VideoError(f"{file}: cannot read ({error})") from None
    if len({i.shape for i in images}) != 1:
        raise VideoError(f"{folder}: the images differ in size")
    return _split(np.stack(images), SEQUENCE_FPS)


def _split(rgba: np.ndarray, fps: float) -> Footage:
    """RGB, and alpha only when it says something (not everywhere opaque)."""
    alpha = rgba[..., 3]
    real_alpha = alpha.min() < 255
    return Footage(np.ascontiguousarray(rgba[..., :3]), alpha.astype(np.float32) / 255 if real_alpha else None, fps)


def resample(footage: Footage, fps: float) -> Footage:
    """The frame nearest each tick of the new rate (no blending: blending would ghost moving objects)."""
    duration = len(footage.frames) / footage.fps
    count = max(1, round(duration * fps))
    index = np.minimum(np.round(np.arange(count) * footage.fps / fps).astype(int), len(footage.frames) - 1)
    alpha = None if footage.alpha is None else footage.alpha[index]
    return Footage(footage.frames[index], alpha, fps)
