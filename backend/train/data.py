"""Training data: world clips rendered on the fly, from training seeds only."""

from __future__ import annotations

from backend.world.clip import render_world_clip
from backend.world.seeds import require_training_seed


def training_clip(seed: int, views: int, frames: int, size: int, family: str | None = None):
    """(object, cameras, times, ClipRender) of a training seed; evaluation seeds are refused."""
    return render_world_clip(require_training_seed(seed), views, frames, size, family)
