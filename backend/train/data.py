"""Training data: world scenes rendered on the fly, from training seeds only.

A scene sample is one object at one time seen by input cameras (what the model reads:
RGB over white + Plücker rays) and by novel target cameras (what the losses compare with).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from backend.io.cameras import Camera, ring_cameras
from backend.models.lrm import camera_projections
from backend.world.clip import render_world_clip
from backend.world.objects import WorldObject
from backend.world.render import render_clip
from backend.world.seeds import EVALUATION_SEED_START, require_training_seed


def training_clip(seed: int, views: int, frames: int, size: int, family: str | None = None):
    """(object, cameras, times, ClipRender) of a training seed; evaluation seeds are refused."""
    return render_world_clip(require_training_seed(seed), views, frames, size, family)


@dataclass
class Views:
    """Tensors for V views of one scene at one time."""

    model_input: torch.Tensor  # (V, 9, H, W): RGB over white, Plücker
    rgb: torch.Tensor  # (V, H, W, 3) over white
    alpha: torch.Tensor  # (V, H, W)
    depth: torch.Tensor  # (V, H, W) camera z, 0 where empty
    canonical: torch.Tensor  # (V, H, W, 3)
    cameras: list[Camera]
    projections: torch.Tensor  # (V, 3, 4) to pixels


def render_views(obj: WorldObject, cameras: list[Camera], t: float) -> Views:
    render = render_clip(obj, cameras, np.array([t]), supersample=1)
    rgb = torch.as_tensor(render.composite()[:, 0]).float() / 255
    plucker = torch.as_tensor(np.stack([c.plucker() for c in cameras]))
    return Views(
        model_input=torch.cat([rgb.permute(0, 3, 1, 2), plucker], dim=1),
        rgb=rgb,
        alpha=torch.as_tensor(render.alpha[:, 0]),
        depth=torch.as_tensor(render.depth[:, 0]),
        canonical=torch.as_tensor(render.canonical[:, 0]),
        cameras=cameras,
        projections=camera_projections(cameras),
    )


def random_cameras(rng: np.random.Generator, inputs: int, targets: int, size: int) -> tuple[list[Camera], list[Camera]]:
    """A ring of input cameras and independent novel target cameras around the object."""
    ring = ring_cameras(inputs, rng, size=size)
    novel = [ring_cameras(1, rng, size=size)[0] for _ in range(targets)]
    return ring, novel


def training_seed(rng: np.random.Generator) -> int:
    return require_training_seed(int(rng.integers(0, EVALUATION_SEED_START)))


def stack_views(items: list[Views]) -> dict[str, torch.Tensor]:
    """Batch (B, V, ...) tensors from per-scene views, plus flattened rays for the losses."""
    from backend.render.volume import camera_rays

    batch = {name: torch.stack([getattr(v, name) for v in items]) for name in ("model_input", "rgb", "alpha", "depth", "canonical")}
    rays = [camera_rays(v.cameras) for v in items]
    batch["origins"] = torch.stack([r[0] for r in rays])  # (B, V, H·W, 3)
    batch["dirs"] = torch.stack([r[1] for r in rays])
    batch["cosines"] = torch.stack([r[2] for r in rays])
    return batch
