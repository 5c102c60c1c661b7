"""Check a job request before any work starts: paths, allowed roots, every video probed against the limits.

Each problem is a ``RequestError`` carrying the HTTP status it deserves (400 bad input, 403 outside the
allowed roots, 413 too large) and a message that names the file and the limit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from backend.io.clip_source import camera_from_json, cameras_from_file
from backend.io.footage import probe_footage
from backend.io.video import VideoError, VideoInfo
from backend.pipeline import output_positions
from backend.protocol import Limits


class RequestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def check_path(raw: str, allowed_roots: list[Path], what: str) -> Path:
    """An absolute, resolved path inside one of the allowed roots (any path when none are configured)."""
    path = Path(raw).expanduser()
    if not path.is_absolute():
        raise RequestError(400, f"{what} {raw!r}: give an absolute path")
    path = path.resolve()
    if allowed_roots and not any(path.is_relative_to(root) for root in allowed_roots):
        raise RequestError(403, f"{what} {raw!r}: outside the backend's allowed folders")
    if not path.exists():
        raise RequestError(400, f"{what} {raw!r}: no such file or folder")
    return path


def check_video(path: Path, limits: Limits, sequence_fps: float | None = None) -> VideoInfo:
    """Probe one video or image sequence against the limits (its headers first); returns its first frame's size as
    shown and its length."""
    try:
        info = probe_footage(path, False, sequence_fps)
    except VideoError as error:
        raise RequestError(400, str(error)) from None
    if max(info.width, info.height) > limits.max_resolution:
        raise RequestError(413, f"{path.name}: {info.width}x{info.height} exceeds the limit of {limits.max_resolution} "
                                "pixels a side")
    if info.duration_s > limits.max_duration_s:
        raise RequestError(413, f"{path.name}: {info.duration_s:.0f} s exceeds the limit of {limits.max_duration_s:.0f} s")
    try:
        return probe_footage(path, True, sequence_fps)
    except VideoError as error:
        raise RequestError(400, str(error)) from None


def check_mask(mask: Path, video: Path, seen: VideoInfo, limits: Limits) -> Path:
    """A mask clip that can be decoded, of its video's size (``seen``: the video's probe), and at least as long (a
    mask sequence gives one image a frame of its video)."""
    masked = check_video(mask, limits, seen.fps)
    if (seen.width, seen.height) != (masked.width, masked.height) or masked.frames < seen.frames:
        raise RequestError(400, f"mask {mask.name}: {masked.width}x{masked.height}, {masked.frames} frames; its video "
                                f"{video.name} is {seen.width}x{seen.height}, {seen.frames} frames (they must match: the "
                                "same size, at least as many frames)")
    return mask


def _lists_nothing(path: Path) -> bool:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return data in ([], {}) or (isinstance(data, dict) and data.get("views") == [])


def check_request(request: dict[str, Any], limits: Limits, allowed_roots: list[Path]) -> dict[str, Any]:
    """The request with resolved paths and cameras checked, or a RequestError."""
    request = dict(request)
    videos: list[Path] = []
    folder_masks: list[str | None] = []  # a clip folder's own mask clips, confined to it as its videos are
    if request.get("clip"):
        if request.get("views"):
            raise RequestError(400, "give either a clip folder or views, not both")
        clip = check_path(request["clip"], allowed_roots, "clip")
        if not (clip / "cameras.json").is_file():
            raise RequestError(400, f"clip {request['clip']!r}: not a clip folder (no cameras.json)")
        try:
            manifest = json.loads((clip / "cameras.json").read_text())
            entries = manifest.get("views") or []
            sequence_fps = float(manifest["fps"])  # the rate its image sequences play at, as load_clip reads them
            if not sequence_fps > 0:
                raise ValueError(f"fps {manifest['fps']!r} is not a frame rate")
            videos = [check_path(str(clip / e["video"]), [clip], "clip view") for e in entries]
            cameras = [camera_from_json(e) for e in entries]
            folder_masks = [str(clip / e["mask"]) if e.get("mask") else None for e in entries]
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise RequestError(400, f"clip {request['clip']!r}: bad cameras.json ({error})") from None
        request["clip"] = str(clip)
    elif request.get("views"):
        sequence_fps = request.get("sequence_fps")
        videos = [check_path(v, allowed_roots, "view") for v in request["views"]]
        request["views"] = [str(v) for v in videos]
        try:
            if request.get("cameras_file"):
                path = check_path(request.pop("cameras_file"), allowed_roots, "cameras_file")
                # a monocular upload may come without the camera that shot it
                cameras = [] if request.get("monocular") and _lists_nothing(path) else cameras_from_file(path)
                request["cameras"] = [c.to_dict() for c in cameras]
            else:
                cameras = [camera_from_json(c) for c in request.get("cameras") or []]
        except ValueError as error:
            raise RequestError(400, str(error)) from None
    else:
        raise RequestError(400, "give a clip folder (clip) or one video per camera (views + cameras)")
    if not videos:
        raise RequestError(400, "the request names no videos")
    if len(videos) > limits.max_views:
        raise RequestError(413, f"{len(videos)} views exceed the limit of {limits.max_views}")
    offsets = request.get("view_offsets") or [0] * len(videos)
    if request.get("view_offsets") and (request.get("monocular") or request.get("clip") or len(offsets) != len(videos)):
        raise RequestError(400, f"view_offsets: one per view of a multi-view job with views ({len(offsets)} for "
                                f"{len(videos)} view(s){', a monocular job' if request.get('monocular') else ''})")
    # once each: the mask checks and the frame count read them
    probed = [check_video(v, limits, sequence_fps) for v in videos]
    if request.get("monocular"):
        if request.get("clip") or len(videos) != 1:
            raise RequestError(400, "a monocular job takes exactly one video (views: [path])")
        if len(cameras) > 1:
            raise RequestError(400, "a monocular job takes at most one camera (the one that shot the clip)")
        if request.get("masks"):
            raise RequestError(400, "masks is for multi-view jobs (a monocular job takes one mask)")
        if request.get("mask"):
            request["mask"] = str(check_mask(check_path(request["mask"], allowed_roots, "mask"), videos[0], probed[0], limits))
    elif request.get("mask"):
        raise RequestError(400, "mask is for monocular jobs (a multi-view job takes masks, one per view)")
    elif len(cameras) != len(videos):
        raise RequestError(400, f"{len(videos)} video(s) need {len(videos)} camera(s), got {len(cameras)}")
    else:
        given = request.get("masks")
        masks, roots = (given, allowed_roots) if given else (folder_masks, [Path(request["clip"])] if folder_masks else [])
        if masks and len(masks) != len(videos):
            raise RequestError(400, f"{len(masks)} mask clip(s) for {len(videos)} view(s): give one per view (null: "
                                    "matte that view from its footage)")
        checked = [m and check_mask(check_path(m, roots, "mask"), video, seen, limits)
                   for m, video, seen in zip(masks, videos, probed, strict=False)]
        if given:
            request["masks"] = [m and str(m) for m in checked]
    for index, (camera, video, seen) in enumerate(zip(cameras, videos, probed, strict=False)):
        try:
            camera.seeing(seen.width, seen.height, f"view {index + 1} ({video.name})")
        except ValueError as error:
            raise RequestError(400, str(error)) from None
    frames = min(info.frames - offset for info, offset in zip(probed, offsets, strict=True))  # after every view's offset
    if frames <= 0:
        raise RequestError(400, f"view_offsets {offsets}: a view has no frames left after its offset ("
                                f"{', '.join(str(info.frames) for info in probed)} frames)")

    start = request.get("frame_start") or 0
    end = request.get("frame_end")
    if start >= frames:
        raise RequestError(400, f"frame_start {start} is past the clip's end ({frames} frames)")
    end = frames if end is None else min(end, frames)
    if end <= start:
        raise RequestError(400, f"frame range [{start}, {end}) is empty")
    if end - start > limits.max_frames:
        raise RequestError(413, f"{end - start} frames exceed the limit of {limits.max_frames} (choose a frame range)")
    if (request.get("texture_size") or 0) > limits.max_texture:
        raise RequestError(413, f"texture_size exceeds the limit of {limits.max_texture}")
    if (request.get("faces") or 0) > limits.max_faces:
        raise RequestError(413, f"faces exceeds the limit of {limits.max_faces}")
    try:
        count = len(output_positions(end - start, request.get("retime") or 1.0, request.get("times")))
    except ValueError as error:
        raise RequestError(400, str(error)) from None
    if count > limits.max_output_frames:
        raise RequestError(413, f"{count} output frames exceed the limit of {limits.max_output_frames}")
    return request
