"""The procedural 4D world: animated objects with exact ground truth, and their renders."""

from __future__ import annotations

import numpy as np

from backend.world.creature import Creature
from backend.world.deformer import Deformer
from backend.world.objects import WorldObject
from backend.world.rigid import RigidAssembly

FAMILIES: dict[str, type[WorldObject]] = {
    "creature": Creature,
    "deformer": Deformer,
    "rigid": RigidAssembly,
}


def make_object(seed: int, family: str | None = None) -> WorldObject:
    """The animated object of ``seed``: the same seed always gives the same object and motion."""
    if seed < 0:
        raise ValueError("seeds are non-negative integers")
    rng = np.random.default_rng(seed)
    names = list(FAMILIES)
    picked = names[int(rng.integers(len(names)))]
    chosen = family or picked
    if chosen not in FAMILIES:
        raise ValueError(f"unknown family {chosen!r}; choose from {', '.join(names)}")
    return FAMILIES[chosen](seed, rng)
