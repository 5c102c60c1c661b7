"""Where a job's clip comes from: a clip folder, or one video per camera with their cameras.

Cameras are given either in the clip-folder format ({"K", "world_to_camera", "width", "height"}) or as a
Blender camera's plain data ({"blender": {"matrix_world", "lens", "sensor_width", "sensor_height",
"sensor_fit", "shift_x", "shift_y", "width", "height"}}), which is what the add-on sends.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from backend.io.cameras import Camera
from backend.io.clip_folder import ClipFolder, read_clip_folder
from backend.io.footage import read_footage
from backend.protocol import sequence_gap

# The most pixels a side a view is kept at (averaged down as it is decoded): the models read 64² (tiny) or 256² (base),
# and the texture is painted from views of twice its size at most (``view_side``); four 4K views of 240 frames would
# be 24 GB kept whole.
VIEW_SIDE = 1024


def view_side(texture_size: int) -> int:
    """The side a job keeps its views at: ``VIEW_SIDE``, or more for a texture larger than half of it."""
    return max(VIEW_SIDE, 2 * texture_size)


def camera_from_json(entry: dict[str, Any]) -> Camera:
    """One camera from either accepted form; a ValueError names what is missing."""
    try:
        if "blender" in entry:
            b = entry["blender"]
            return Camera.from_blender(np.asarray(b["matrix_world"], dtype=np.float64), float(b["lens"]),
                                       float(b["sensor_width"]), float(b["sensor_height"]), str(b.get("sensor_fit", "AUTO")),
                                       float(b.get("shift_x", 0.0)), float(b.get("shift_y", 0.0)),
                                       int(b["width"]), int(b["height"]))
        return Camera.from_dict(entry.get("camera", entry))
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"camera {entry!r:.80}: not a camera ({type(error).__name__}: {error})") from None


def cameras_from_file(path: Path) -> list[Camera]:
    """A cameras.json in the clip-folder format ({"views": [{"camera": ...}, ...]}) or a plain list."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: cannot read cameras ({error})") from None
    entries = data.get("views", []) if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: lists no cameras")
    return [camera_from_json(e) for e in entries]


def sequence_gaps(given: list[Path | None]) -> list[str]:
    """What the image sequences among ``given`` (views, masks, or a clip folder's, read from its cameras.json) leave
    out after a gap (``protocol.sequence_gap``), one sentence each."""
    paths: list[Path] = []
    for path in filter(None, given):
        if path.is_dir() and (path / "cameras.json").is_file():
            try:
                entries = json.loads((path / "cameras.json").read_text()).get("views") or []
                paths += [path / entry[key] for entry in entries for key in ("video", "mask") if entry.get(key)]
            except (ValueError, AttributeError, TypeError):
                continue  # reading the clip says what is wrong with it
        else:
            paths.append(path)
    return [gap for path in paths if (gap := sequence_gap(path))]


def load_clip(clip: Path | None = None, views: list[Path] | None = None, cameras: list[Camera] | None = None,
              frame_start: int = 0, frame_end: int | None = None, masks: list[Path | None] | None = None,
              max_side: int | None = VIEW_SIDE, sequence_fps: float | None = None,
              view_offsets: list[int] | None = None) -> ClipFolder:
    """The frames [frame_start, frame_end) of a clip folder, or of videos seen by ``cameras`` (same order), each
    view over white (``ClipFolder.put_on_white``). ``masks``: a mask clip per view (white = object; None: matte
    that view from its footage), over the same frames; they replace a clip folder's own. Videos are kept at most
    ``max_side`` pixels a side (None: as filmed), and videos of different sizes (a phone beside a camera) at the
    first one's size, their cameras and masks with them. A clip folder (the world's format, at the models' sizes)
    is read as it is. Image sequences play at ``sequence_fps`` (default: the first view's rate, 24 when it is one).
    ``view_offsets``: per view, its own frames (at its own rate) before the clip's first (views synced by sliding them
    along a timeline), its mask clip's likewise. A view's mask sequence gives one image a frame of its view."""
    offsets = view_offsets or [0] * len(views or [])
    if view_offsets and (clip is not None or len(view_offsets) != len(views or []) or min(view_offsets) < 0):
        raise ValueError(f"view offsets {view_offsets}: give one per view (0 or more frames), for views, not a clip folder")
    loaded, sizes, rates = _load_frames(clip, views, cameras, frame_start, frame_end, max_side, sequence_fps, offsets)
    if masks is not None:
        if len(masks) != len(loaded.cameras):
            raise ValueError(f"{len(masks)} mask clip(s) for {len(loaded.cameras)} view(s): give one per view (or none)")
        for view, mask in enumerate(masks):
            if mask is not None:
                given = read_footage(mask, loaded.fps, frame_start, frame_start + loaded.frames.shape[1], max_side,
                                     rates[view], offsets[view] if offsets else 0)
                filmed = given.source_size
                if filmed != sizes[view]:
                    raise ValueError(f"{mask}: {len(given.frames)} frame(s) at {filmed[0]}x{filmed[1]}; its view {view} was "
                                     f"filmed at {sizes[view][0]}x{sizes[view][1]} (they must match)")
                loaded.give_mattes(view, _resized(given.frames, loaded.frames.shape[3], loaded.frames.shape[2]), str(mask))
    loaded.put_on_white()
    return loaded


def _load_frames(clip: Path | None, views: list[Path] | None, cameras: list[Camera] | None, frame_start: int,
                 frame_end: int | None, max_side: int | None, sequence_fps: float | None,
                 offsets: list[int]) -> tuple[ClipFolder, list[tuple[int, int]], list[float]]:
    """The clip, and each view's footage size (width, height) and rate as filmed."""
    if clip is not None:
        whole = read_clip_folder(clip)
        stop = whole.frames.shape[1] if frame_end is None else min(frame_end, whole.frames.shape[1])
        if frame_start >= stop:
            raise ValueError(f"{clip}: frame range [{frame_start}, {frame_end}) is empty (the clip has {whole.frames.shape[1]})")
        return whole.frame_range(frame_start, stop), [(c.width, c.height) for c in whole.cameras], [whole.fps] * len(whole.cameras)
    if not views:
        raise ValueError("give a clip folder, or videos with their cameras")
    if cameras is None or len(cameras) != len(views):
        raise ValueError(f"{len(views)} videos need {len(views)} cameras, got {0 if cameras is None else len(cameras)}")
    frames, sizes, rates, seeing, alphas, fps = None, [], [], [], {}, None
    for index, (video, camera) in enumerate(zip(views, cameras, strict=True)):
        # the first view sets the clip's rate; a view filmed at another rate gives its frames nearest the same instants,
        # and an image sequence, which has no rate of its own, is taken at the clip's unless its rate is given
        footage = read_footage(video, fps, frame_start, frame_end, max_side, sequence_fps or fps, offsets[index])
        seeing.append(camera.seeing(*footage.source_size, f"view {index + 1} ({Path(video).name})"))
        if frames is None:  # every view goes straight into one array: no second copy of the whole clip
            frames, fps = np.empty((len(views), *footage.frames.shape), np.uint8), footage.fps
        count = min(len(footage.frames), frames.shape[1])
        frames = frames[:, :count]
        frames[index] = _resized(footage.frames[:count], frames.shape[3], frames.shape[2])
        if footage.alpha is not None:  # keyed footage: its alpha is the matte
            alphas[index] = _resized(footage.alpha[:count], frames.shape[3], frames.shape[2]) > 0.5
        sizes.append(footage.source_size)
        rates.append(footage.source_fps)
        del footage
    count, height, width = frames.shape[1:4]
    clip = ClipFolder(frames, [c.resized(width, height) for c in seeing], np.linspace(0, 1, count), fps)
    for view, matte in alphas.items():
        clip.give_mattes(view, matte[:count], f"{views[view]} (its alpha channel)")
    # clip time runs over the chosen range as it does over a world clip: 0 at its first frame, 1 at its last
    return clip, sizes, rates


def _resized(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """Frames (F, H, W[, C]) at another size (averaged when shrinking); untouched at their own size."""
    if frames.shape[1:3] == (height, width):
        return frames
    shrinking = width * height < frames.shape[1] * frames.shape[2]
    mode = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return np.stack([cv2.resize(f, (width, height), interpolation=mode) for f in frames])
