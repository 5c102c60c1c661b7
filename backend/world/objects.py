"""The common shape of every animated world object: fixed topology, motion at any t in [0, 1]."""

from __future__ import annotations

from abc import ABC, abstractmethod
from functools import cached_property
from typing import Any

import numpy as np

from backend.world.textures import ProceduralTexture

# Objects are scaled so that over their whole motion they fit a cube of this half-extent
# (randomly smaller): cameras on a ring of radius ~2.6 always see all of them.
MAX_HALF_EXTENT = 0.8


class WorldObject(ABC):
    """An animated mesh whose vertex list never changes, so correspondences are exact.

    Subclasses build ``faces``, ``part_ids`` and implement :meth:`_raw_vertices`; the base
    class fits the motion into the unit-ish box and provides the texture.
    """

    family: str = ""

    def __init__(self, seed: int, rng: np.random.Generator) -> None:
        self.seed = seed
        self.rng = rng
        self.motion: str = ""
        self.faces: np.ndarray = np.zeros((0, 3), dtype=np.int64)
        self.part_ids: np.ndarray = np.zeros(0, dtype=np.int64)
        self._center = np.zeros(3)
        self._scale = 1.0

    def _finish(self) -> None:
        """Called by subclasses once built: texture and normalisation, from the same rng."""
        self.texture = ProceduralTexture.random(self.rng, int(self.part_ids.max()) + 1)
        samples = np.stack([self._raw_vertices(t) for t in np.linspace(0.0, 1.0, 25)])
        low, high = samples.min(axis=(0, 1)), samples.max(axis=(0, 1))
        half_extent = self.rng.uniform(0.6, 1.0) * MAX_HALF_EXTENT
        self._center = (low + high) / 2
        self._scale = half_extent / ((high - low).max() / 2)

    @abstractmethod
    def _raw_vertices(self, t: float) -> np.ndarray:
        """Vertices (N, 3) at time t in the object's own building units."""

    def vertices_at(self, t: float) -> np.ndarray:
        """World vertices (N, 3) float32 at continuous time t in [0, 1]."""
        return ((self._raw_vertices(float(t)) - self._center) * self._scale).astype(np.float32)

    @cached_property
    def canonical_vertices(self) -> np.ndarray:
        """Where every vertex sits at t = 0: the canonical coordinates of the surface."""
        return self.vertices_at(0.0)

    @property
    def face_part_ids(self) -> np.ndarray:
        return self.part_ids[self.faces[:, 0]]

    def describe(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "family": self.family,
            "motion": self.motion,
            "vertices": len(self.part_ids),
            "faces": len(self.faces),
            "texture": self.texture.to_dict(),
        }


def smoothstep(edge0: float, edge1: float, x: np.ndarray | float) -> np.ndarray:
    s = np.clip((np.asarray(x, dtype=np.float64) - edge0) / (edge1 - edge0), 0.0, 1.0)
    return s * s * (3 - 2 * s)


def bump(p: float, start: float, end: float) -> float:
    """Half a sine wave over [start, end], zero outside."""
    if not start <= p <= end:
        return 0.0
    return float(np.sin(np.pi * (p - start) / (end - start)))
