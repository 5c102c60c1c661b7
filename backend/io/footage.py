"""Footage in: any clip PyAV decodes (MP4, MOV, WebM, GIF, …) or an image sequence (a folder of images, or a
numbered image and those after it: ``protocol.image_sequence``; OpenEXR renders through ``exr``), with its alpha
channel when it has one, sampled to a target frame rate.

Only the frames asked for are kept, each shrunk as it is decoded when a ``max_side`` is given: a minute of
4K phone footage is 60 GB as RGBA arrays, and a job reads a few dozen frames of it at a model's 64².
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from backend.io.exr import ExrError, exr_rgba, exr_size
from backend.io.video import VideoError, VideoInfo, frame_array, open_video, probe_video, shrunk_size
from backend.protocol import SEQUENCE_FPS, image_sequence

ORIENTATION = 0x0112  # the EXIF tag of a photo's turn


@dataclass
class Footage:
    frames: np.ndarray  # (F, H, W, 3) uint8
    alpha: np.ndarray | None  # (F, H, W) float32 in [0, 1], when the source carries a real alpha channel
    fps: float
    source_size: tuple[int, int] = (0, 0)  # width, height as filmed (frames may be shrunk from it)
    source_fps: float = 0.0  # the rate it was filmed at (an image sequence: the rate it was given)


def read_footage(source: str | Path, fps: float | None = None, start: int = 0, stop: int | None = None,
                 max_side: int | None = None, sequence_fps: float | None = None, skip: int = 0) -> Footage:
    """Frames [start, stop) of a clip file or an image sequence, resampled (nearest frame) to ``fps`` when given
    (the range counts frames at that rate), each shrunk to at most ``max_side`` pixels a side when given.
    An image sequence plays at ``sequence_fps`` (default ``SEQUENCE_FPS``). ``skip``: frames of the source, at its
    own rate, before the range's frame 0 (a camera started early). An empty range is a ValueError that says how long
    the clip is."""
    source = Path(source)
    files = _sequence(source)
    if files is None:
        with open_video(source) as (container, stream, rate):
            layout = "rgba" if _may_have_alpha(stream) else "rgb24"  # RGBA conversion costs a third more a frame
            return _gather(source, (partial(frame_array, f, layout) for f in container.decode(stream)), rate, fps, start,
                           stop, max_side, skip)
    return _gather(source, (partial(_image, file) for file in files), sequence_fps or SEQUENCE_FPS, fps, start, stop,
                   max_side, skip)


def probe_footage(source: str | Path, decode: bool = True, sequence_fps: float | None = None) -> VideoInfo:
    """``video.probe_video`` for a clip file; for an image sequence, its first image's size as shown (from its header)
    and the number of images, at ``sequence_fps``. With ``decode``, every image's header is read too: a sequence
    whose images differ in size is a VideoError naming the first that differs (before any is decoded)."""
    source = Path(source)
    files = _sequence(source)
    if files is None:
        return probe_video(source, decode)
    width, height = _shown_size(files[0])
    for file in files[1:] if decode else []:
        if _shown_size(file) != (width, height):
            raise VideoError(f"{file}: {'x'.join(map(str, _shown_size(file)))}, but the sequence's first image "
                             f"{files[0].name} is {width}x{height} (a sequence's images must be one size)")
    rate = sequence_fps or SEQUENCE_FPS
    return VideoInfo(width, height, len(files), rate, len(files) / rate, "image sequence")


def _shown_size(file: Path) -> tuple[int, int]:
    """(width, height) of an image as viewers show it, from its header."""
    if file.suffix.lower() == ".exr":
        try:
            return exr_size(file)
        except ExrError as error:
            raise VideoError(str(error)) from None
    try:
        with Image.open(file) as image:
            width, height = image.size
            turned = image.getexif().get(ORIENTATION, 1) in (5, 6, 7, 8)  # a quarter turn: shown the other way round
    except (OSError, Image.DecompressionBombError) as error:
        raise VideoError(f"{file}: cannot read ({error})") from None
    return (height, width) if turned else (width, height)


def _may_have_alpha(stream) -> bool:
    """Whether a video stream's pixels can carry alpha (an alpha plane, or a palette: GIFs); unknown counts as yes."""
    layout = stream.codec_context.format
    return layout is None or layout.has_palette or any(component.is_alpha for component in layout.components)


def _sequence(source: Path) -> list[Path] | None:
    try:
        return image_sequence(source)
    except ValueError as error:
        raise VideoError(str(error)) from None


def _gather(source: Path, frames: Iterable[Callable[[], np.ndarray]], rate: float, fps: float | None, start: int,
            stop: int | None, max_side: int | None, skip: int) -> Footage:
    """Keep the source frames the output range picks, shrunk, stopping the decode once the range is covered. Each
    frame comes as a call that makes its RGBA image, made only for the frames picked (an image sequence's other
    images are never read, a video's other frames never converted)."""
    if stop is not None and stop <= start:
        raise ValueError(f"{source}: frame range [{start}, {stop}) is empty")
    step = rate / fps if fps else 1.0

    def source_index(j: int) -> int:  # the source frame that output frame j shows
        return skip + round(j * step)

    wanted = None if stop is None else {source_index(j) for j in range(start, stop)}
    first, final = source_index(start), None if wanted is None else max(wanted)
    kept: dict[int, np.ndarray] = {}
    sizes: set[tuple[int, int]] = set()

    def keep(index: int, make: Callable[[], np.ndarray]) -> None:
        image = make()
        sizes.add((image.shape[1], image.shape[0]))
        if len(sizes) > 1:
            raise VideoError(f"{source}: its frames differ in size ({' and '.join(f'{w}x{h}' for w, h in sorted(sizes))})")
        kept[index] = _shrunk(image, max_side)

    count, last, covered = 0, None, False
    for index, make in enumerate(frames):
        count, last = index + 1, make
        if index in wanted if wanted is not None else index >= first:
            keep(index, make)
        if final is not None and index >= final:
            covered = True  # the rest of the clip is never decoded
            break
    if last is None:
        raise VideoError(f"{source}: the clip has no frames")
    # output frames in the clip after the skipped ones, when it was decoded to its end
    total = 0 if count <= skip else max(1, round((count - skip) / step)) if fps else count - skip
    end = stop if covered else total if stop is None else min(stop, total)
    if start >= end:
        after = f" after its first {skip}" if skip else ""
        raise ValueError(f"{source}: frame range [{start}, {stop}) is empty (the clip has {total}{after} at {fps or rate:g} "
                         "fps)")
    picks = [min(source_index(j), count - 1) for j in range(start, end)]
    if count - 1 in picks and count - 1 not in kept:
        keep(count - 1, last)
    footage = _split(np.stack([kept[i] for i in picks]), fps or rate, next(iter(sizes)))
    footage.source_fps = rate
    return footage


def _shrunk(rgba: np.ndarray, max_side: int | None) -> np.ndarray:
    """An RGBA (or RGB) frame averaged down to at most ``max_side`` a side. Colour is averaged premultiplied by alpha, so an
    outline pixel keeps the object's colour at its share of coverage (straight colours would bleed the backdrop in)."""
    height, width = rgba.shape[:2]
    size = shrunk_size(width, height, max_side)
    if size == (width, height):
        return rgba
    if rgba.shape[2] == 3 or rgba[..., 3].min() == 255:
        return cv2.resize(rgba, size, interpolation=cv2.INTER_AREA)
    alpha = rgba[..., 3:].astype(np.float32) / 255
    premultiplied = cv2.resize(rgba[..., :3].astype(np.float32) * alpha, size, interpolation=cv2.INTER_AREA)
    coverage = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)[..., None]
    colour = premultiplied / np.maximum(coverage, 1e-6)
    return np.concatenate([colour, coverage * 255], axis=-1).round().clip(0, 255).astype(np.uint8)


def _image(file: Path) -> np.ndarray:
    if file.suffix.lower() == ".exr":
        try:
            return exr_rgba(file)
        except ExrError as error:
            raise VideoError(str(error)) from None
    try:
        with Image.open(file) as image:
            return _rgba(ImageOps.exif_transpose(image))  # upright, as viewers show a phone's photo
    except (OSError, Image.DecompressionBombError) as error:
        raise VideoError(f"{file}: cannot read ({error})") from None


def _rgba(image: Image.Image) -> np.ndarray:
    """An image as 8-bit RGBA. 16-bit grey (a render's or a roto tool's mask) is scaled down: PIL's own conversion
    clips it, which turns every grey above 255 of 65535 white."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L"):
        grey = (np.asarray(image, dtype=np.float32).clip(0, 65535) / 257).round().astype(np.uint8)
        return np.dstack([grey, grey, grey, np.full_like(grey, 255)])
    return np.asarray(image.convert("RGBA"))


def _split(rgba: np.ndarray, fps: float, source_size: tuple[int, int]) -> Footage:
    """RGB, and alpha only when it says something (not everywhere opaque); RGB frames have none."""
    if rgba.shape[-1] == 3:
        return Footage(rgba, None, fps, source_size)
    alpha = rgba[..., 3]
    real_alpha = alpha.min() < 255
    return Footage(np.ascontiguousarray(rgba[..., :3]), alpha.astype(np.float32) / 255 if real_alpha else None, fps,
                   source_size)


def resample(footage: Footage, fps: float) -> Footage:
    """The frame nearest each tick of the new rate (no blending: blending would ghost moving objects)."""
    duration = len(footage.frames) / footage.fps
    count = max(1, round(duration * fps))
    index = np.minimum(np.round(np.arange(count) * footage.fps / fps).astype(int), len(footage.frames) - 1)
    alpha = None if footage.alpha is None else footage.alpha[index]
    return Footage(footage.frames[index], alpha, fps, footage.source_size, footage.source_fps)
