"""Video files through PyAV: write frames to MP4, read any clip back as RGB frames."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


class VideoError(ValueError):
    """A clip that cannot be decoded; the message says which file and why."""


def write_mp4(path: str | Path, frames: np.ndarray, fps: float, crf: int = 16) -> None:
    """Encode uint8 frames (F, H, W, 3) as H.264 MP4 (yuv420p, so H and W must be even)."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames (F, H, W, 3), got {frames.dtype} {frames.shape}")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"H.264 needs even frame sizes, got {width}x{height}")
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def read_video(path: str | Path) -> tuple[np.ndarray, float]:
    """Decode every frame of a clip -> uint8 (F, H, W, 3) and its frame rate."""
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: no such file")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"{path}: no video stream")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0) or 24.0
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    except av.FFmpegError as error:
        raise VideoError(f"{path}: cannot decode ({error})") from None
    if not frames:
        raise VideoError(f"{path}: the clip has no frames")
    return np.stack(frames), fps
