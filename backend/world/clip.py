"""Procedural world clips: one object, V ring cameras, F frames -> a clip folder with ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from backend.io.cameras import Camera, ring_cameras
from backend.io.clip_folder import write_clip_folder, write_ground_truth
from backend.world import make_object
from backend.world.objects import WorldObject
from backend.world.render import ClipRender, render_clip


def clip_cameras(seed: int, views: int, size: int, fov_deg: float = 40.0) -> list[Camera]:
    """The ring of cameras of a seed (its own random stream, independent of the object's)."""
    return ring_cameras(views, np.random.default_rng([seed, 1]), fov_deg=fov_deg, size=size)


def render_world_clip(
    seed: int, views: int, frames: int, size: int, family: str | None = None, supersample: int = 2,
    fov_deg: float = 40.0,
) -> tuple[WorldObject, list[Camera], np.ndarray, ClipRender]:
    obj = make_object(seed, family)
    cameras = clip_cameras(seed, views, size, fov_deg)
    times = np.linspace(0.0, 1.0, frames)
    return obj, cameras, times, render_clip(obj, cameras, times, supersample=supersample)


def write_world_clip(
    out: Path,
    seed: int,
    views: int,
    frames: int,
    size: int,
    family: str | None = None,
    fps: float = 24.0,
    supersample: int = 2,
    fov_deg: float = 40.0,
) -> dict[str, Any]:
    """Render and write one clip folder (see backend.io.clip_folder); returns world.json's content."""
    obj, cameras, times, render = render_world_clip(seed, views, frames, size, family, supersample, fov_deg)
    source = {"source": "procedural", **obj.describe(), "views": views, "frames": frames, "size": size}
    write_clip_folder(out, render.composite(), cameras, times, fps, source)
    write_ground_truth(
        out,
        obj.canonical_vertices,
        obj.faces,
        np.stack([obj.vertices_at(t) for t in times]),
        times,
        {"alpha": render.alpha, "mask": render.mask, "depth": render.depth, "canonical": render.canonical},
    )
    return source
