"""Video files through PyAV: write frames to MP4, read any clip back as RGB frames, upright as players show them."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # imported where a clip is read or written: rendering and training never need PyAV
    import av


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
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def write_mask_clip(path: str | Path, masks: np.ndarray, fps: float) -> None:
    """Masks (F, H, W): bool, or coverage in [0, 1] (over a half is the object), as a mask clip: white = object."""
    write_mp4(path, np.repeat((np.asarray(masks) > 0.5)[..., None] * np.uint8(255), 3, axis=-1), fps)


@contextmanager
def open_video(path: str | Path) -> Iterator[tuple[av.container.InputContainer, av.video.stream.VideoStream, float]]:
    """(container, its first video stream, frame rate); every failure is a VideoError naming the file."""
    import av

    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: the file is empty")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"{path}: no video stream")
            stream = container.streams.video[0]
            if stream.codec_context is None:
                tag = getattr(stream, "codec_tag", "") or "?"
                raise VideoError(f"{path}: unknown or unsupported video codec ({tag})")
            yield container, stream, float(stream.average_rate or stream.guessed_rate or 0) or 24.0
    except av.FFmpegError as error:
        raise VideoError(f"{path}: cannot decode ({error})") from None


def display_matrix(frame: av.VideoFrame) -> np.ndarray | None:
    """The frame's display matrix (9 int32, 16.16 fixed point), or None when it is shown as stored."""
    from av.sidedata.sidedata import Type

    data = frame.side_data.get(Type.DISPLAYMATRIX)
    return None if data is None else np.frombuffer(bytes(data), dtype="<i4")


def upright(image: np.ndarray, matrix: np.ndarray | None) -> np.ndarray:
    """A decoded image (H, W, ...) turned as players show it. Phones store the sensor's landscape pixels and a
    display matrix that says how to turn them; Blender's movie clips honour it, so the backend must too.
    Follows FFmpeg's own autorotate (fftools): quarter turns, half turns and mirrors."""
    if matrix is None:
        return image
    a, b, c, d = (float(v) for v in matrix[[0, 1, 3, 4]])
    rotation = -math.degrees(math.atan2(b / math.hypot(b, d), a / math.hypot(a, c)))  # av_display_rotation_get
    theta = -round(rotation) % 360
    if theta == 90:
        turned = image.swapaxes(0, 1) if c > 0 else np.rot90(image, -1)
    elif theta == 270:
        turned = np.rot90(image, -1)[::-1] if c < 0 else np.rot90(image, 1)
    elif theta == 180:
        turned = image[:, ::-1] if a < 0 else image
        turned = turned[::-1] if d < 0 else turned
    elif theta == 0:
        turned = image[::-1] if d < 0 else image
    else:
        raise VideoError(f"a display rotation of {theta} degrees is not a quarter turn; re-export the clip upright")
    return np.ascontiguousarray(turned)


def frame_array(frame: av.VideoFrame, format: str = "rgb24") -> np.ndarray:
    """A decoded frame as an upright array (H, W, channels)."""
    return upright(frame.to_ndarray(format=format), display_matrix(frame))


def read_video(path: str | Path, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, float]:
    """Decode frames [start, stop) of a clip (default: all) -> uint8 (F, H, W, 3) upright, and its frame rate."""
    with open_video(path) as (container, stream, fps):
        frames = []
        for index, frame in enumerate(container.decode(stream)):
            if stop is not None and index >= stop:
                break
            if index >= start:
                frames.append(frame_array(frame))
    if not frames:
        raise VideoError(f"{path}: the clip has no frames" + (f" from frame {start}" if start else ""))
    return np.stack(frames), fps


def shrunk_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(width, height) scaled to at most ``max_side`` a side, the aspect kept; unchanged when it fits or no cap."""
    if not max_side or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


@dataclass(frozen=True)
class VideoInfo:
    width: int  # as players show the clip (a phone's portrait clip is taller than wide) once a frame was decoded
    height: int
    frames: int  # counted from the container's metadata or duration; estimates for some formats
    fps: float
    duration_s: float
    codec: str


def probe_video(path: str | Path, decode: bool = True) -> VideoInfo:
    """Size, length and codec of a clip from its headers; with ``decode``, also decode its first frame
    (cheap, no full decode), which tells the size as shown (a display matrix may turn it a quarter).
    Check the size before decoding anything huge."""
    import av

    with open_video(path) as (container, stream, fps):
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = 0.0
        frames = int(stream.frames) or max(1, round(duration * fps))
        info = VideoInfo(int(stream.codec_context.width), int(stream.codec_context.height), frames, fps, duration,
                         stream.codec_context.name)
        if decode:
            first = next(container.decode(stream), None)
            if first is None:
                raise VideoError(f"{path}: the clip has no frames")
            shown = upright(np.empty((first.height, first.width), np.uint8), display_matrix(first)).shape
            info = VideoInfo(shown[1], shown[0], frames, fps, duration, info.codec)
    return info
