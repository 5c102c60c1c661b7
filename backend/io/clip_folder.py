"""The multi-view clip folder: what `world` writes and `reconstruct` reads.

    DIR/
      cameras.json       format, fps, frame times, one entry per view: video file + camera
                         (+ optional "mask": a mask clip of the view, white = object, used instead of the matte)
      view_00.mp4 ...    one RGB clip per view (object over a white background)
      contact.png        views (rows) x frames (columns, at most 8, evenly sampled)
      world.json         what made the clip (seed, family, motion, or the glTF asset)
      gt/                ground truth, when known
        mesh.npz         canonical_vertices (N, 3) f32 at t = 0, faces (M, 3) i32
        vertices.npz     vertices (F, N, 3) f32 per frame (same vertex list), times (F,)
        view_00.npz      alpha (F, H, W) f32, mask (F, H, W) bool, depth (F, H, W) f32
                         camera-space z (0 = empty), canonical (F, H, W, 3) f32
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from backend.io.cameras import Camera
from backend.io.footage import read_footage
from backend.io.video import write_mp4

FORMAT = "lim4d-clip"
VERSION = 1
WHITE = 245  # a border whose median is at least this bright in every channel: the footage is on white already


@dataclass
class ClipFolder:
    """A multi-view clip in memory: frames (V, F, H, W, 3) uint8, a camera per view, frame times."""

    frames: np.ndarray
    cameras: list[Camera]
    times: np.ndarray
    fps: float
    generated_views: tuple[int, ...] = ()  # views a model made up (monocular jobs), not footage of the motion
    put_on_white_views: tuple[int, ...] = ()  # footage views matted and put on white on loading (put_on_white)
    _mattes: dict[int, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    @property
    def footage_views(self) -> list[int]:
        return [v for v in range(len(self.cameras)) if v not in self.generated_views]

    def matte(self, view: int) -> np.ndarray:
        """Where view ``view`` shows the object at every frame (F, H, W) bool, matted once (GrabCut on a busy
        background costs about a second a frame) and kept for every later stage that asks."""
        if view not in self._mattes:
            from backend.io.matte import foreground

            self._mattes[view] = foreground(self.frames[view]).masks
        return self._mattes[view]

    def give_mattes(self, view: int, masks: np.ndarray, source: str = "mask clip") -> None:
        """Use the user's masks (F, H, W[, 3]; white or True = object) for ``view`` instead of matting it: footage
        filmed in a busy room, where no automatic matte finds the object, keeps what the user roto'd or keyed.
        More mask frames than the view has are cut; fewer, or another size, are a ValueError naming ``source``."""
        from backend.io.matte import foreground

        frames = self.frames[view]
        if len(masks) < len(frames) or masks.shape[1:3] != frames.shape[1:3]:
            raise ValueError(f"{source}: {len(masks)} frame(s) at {masks.shape[2]}x{masks.shape[1]}; its view "
                             f"{view} has {len(frames)} at {frames.shape[2]}x{frames.shape[1]} (they must match)")
        self._mattes[view] = foreground(frames, user_masks=masks[:len(frames)]).masks

    def frame_range(self, start: int, stop: int) -> ClipFolder:
        """Frames [start, stop) of every view, with their times and any mattes already known."""
        part = ClipFolder(self.frames[:, start:stop], self.cameras, self.times[start:stop], self.fps, self.generated_views,
                          self.put_on_white_views)
        part._mattes = {view: masks[start:stop] for view, masks in self._mattes.items()}
        return part

    def put_on_white(self) -> list[int]:
        """Composite every view whose background is not white already onto white, with its matte: the models
        and the tracking read the object over white, as the world renders it and as monocular framing puts
        it. Footage filmed against a wall or a screen of another colour, or in a room, would otherwise read as
        part of the object. Returns the views changed (their mattes, taken from the footage as filmed, stay)."""
        from backend.io.matte import border_pixels

        changed = []
        for view in range(len(self.cameras)):
            if np.median(border_pixels(self.frames[view]), axis=0).min() >= WHITE:  # most of the border is white
                continue
            if not self.matte(view).any():  # else a blank view, and later "nothing to mesh", would be all it says
                raise ValueError(f"view {view}: its matte shows no object in any frame (no automatic matte reads a busy "
                                 "background); give a mask clip per view (white = object: --mask, \"mask\" in "
                                 "cameras.json, or masks in a request)")
            np.copyto(self.frames[view], 255, where=~self.matte(view)[..., None])  # no index arrays: 8 bytes a pixel
            changed.append(view)
        self.put_on_white_views = tuple(sorted(set(self.put_on_white_views) | set(changed)))
        return changed


def contact_sheet(frames: np.ndarray, max_columns: int = 8) -> np.ndarray:
    """Tile frames (V, F, H, W, 3) into one image: a row per view, evenly sampled frames."""
    columns = np.unique(np.linspace(0, frames.shape[1] - 1, min(max_columns, frames.shape[1])).round().astype(int))
    rows = [np.concatenate(list(view[columns]), axis=1) for view in frames]
    return np.concatenate(rows, axis=0)


def write_clip_folder(
    out: Path,
    frames: np.ndarray,
    cameras: list[Camera],
    times: np.ndarray,
    fps: float,
    source: dict[str, Any],
) -> None:
    """Write videos, cameras.json, world.json and contact.png (ground truth is written apart)."""
    out.mkdir(parents=True, exist_ok=True)
    views = []
    for index, (view_frames, camera) in enumerate(zip(frames, cameras, strict=True)):
        name = f"view_{index:02d}"
        write_mp4(out / f"{name}.mp4", view_frames, fps)
        views.append({"name": name, "video": f"{name}.mp4", "camera": camera.to_dict()})
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "convention": "opencv world_to_camera; world +Z up; pixel centres at i + 0.5",
        "fps": fps,
        "frame_count": len(times),
        "times": [float(t) for t in times],
        "views": views,
    }
    (out / "cameras.json").write_text(json.dumps(manifest, indent=1))
    (out / "world.json").write_text(json.dumps(source, indent=1))
    Image.fromarray(contact_sheet(frames)).save(out / "contact.png")


def write_ground_truth(
    out: Path,
    canonical_vertices: np.ndarray,
    faces: np.ndarray,
    vertices: np.ndarray,
    times: np.ndarray,
    maps: dict[str, np.ndarray] | None = None,
) -> None:
    """gt/ files: the canonical mesh, per-frame vertices and per-view maps indexed [view, frame]."""
    gt = out / "gt"
    gt.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(gt / "mesh.npz", canonical_vertices=canonical_vertices.astype(np.float32), faces=faces.astype(np.int32))
    np.savez_compressed(gt / "vertices.npz", vertices=vertices.astype(np.float32), times=np.asarray(times, np.float32))
    if maps is None:
        return
    for view in range(len(maps["mask"])):
        np.savez_compressed(gt / f"view_{view:02d}.npz", **{name: array[view] for name, array in maps.items()})


def read_clip_folder(folder: str | Path) -> ClipFolder:
    """Load a clip folder's videos and cameras; errors name the file at fault."""
    folder = Path(folder)
    manifest_path = folder / "cameras.json"
    if not manifest_path.is_file():
        raise ValueError(f"{folder}: not a clip folder (no cameras.json)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{manifest_path}: not valid JSON ({error})") from None
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{manifest_path}: format is {manifest.get('format')!r}, expected {FORMAT!r}")
    if not manifest.get("views"):
        raise ValueError(f"{manifest_path}: lists no views")
    cameras, clips = [], []
    for view in manifest["views"]:
        frames = read_footage(folder / view["video"], sequence_fps=float(manifest["fps"])).frames  # a video or images
        cameras.append(Camera.from_dict(view["camera"]).seeing(frames.shape[2], frames.shape[1], str(folder / view["video"])))
        clips.append(frames)
    count = min(len(c) for c in clips)
    times = np.asarray(manifest.get("times") or np.linspace(0, 1, count), dtype=np.float64)
    clip = ClipFolder(np.stack([c[:count] for c in clips]), cameras, times[:count], float(manifest["fps"]))
    for index, view in enumerate(manifest["views"]):
        if view.get("mask"):
            masks = read_footage(folder / view["mask"], stop=count, sequence_fps=float(manifest["fps"])).frames
            clip.give_mattes(index, masks, str(folder / view["mask"]))
    return clip
