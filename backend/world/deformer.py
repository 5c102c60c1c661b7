"""Non-rigid deformers: a blob, capsule or boxy body bent, twisted, squashed and rippled over time."""

from __future__ import annotations

import numpy as np
import trimesh

from backend.world.objects import WorldObject

BASES = ("blob", "capsule", "boxy")
OPERATIONS = ("bend", "twist", "squash", "wave")


class Deformer(WorldObject):
    family = "deformer"

    def __init__(self, seed: int, rng: np.random.Generator) -> None:
        super().__init__(seed, rng)
        self.base = str(BASES[rng.integers(len(BASES))])
        mesh = self._base_mesh(rng)
        self.rest = np.asarray(mesh.vertices, dtype=np.float64)
        self.faces = np.asarray(mesh.faces, dtype=np.int64)
        self.part_ids = np.zeros(len(self.rest), dtype=np.int64)
        self.rest_normals = np.asarray(mesh.vertex_normals, dtype=np.float64)
        count = int(rng.integers(1, 4))
        chosen = rng.choice(len(OPERATIONS), size=count, replace=False)
        self.operations = [OPERATIONS[i] for i in sorted(chosen)]
        self.motion = "+".join(self.operations)
        self.params = {
            op: {
                "amount": float(rng.uniform(*{"bend": (0.5, 1.3), "twist": (0.6, 1.6), "squash": (0.15, 0.35), "wave": (0.04, 0.09)}[op])),
                "cycles": float(rng.uniform(0.5, 2.5)),
                "phase": float(rng.uniform(0, 2 * np.pi)),
                "direction": rng.normal(size=3),
                "frequency": float(rng.uniform(4.0, 10.0)),
            }
            for op in self.operations
        }
        self.z_low, self.z_high = self.rest[:, 2].min(), self.rest[:, 2].max()
        self._finish()

    def _base_mesh(self, rng: np.random.Generator) -> trimesh.Trimesh:
        if self.base == "capsule":
            return trimesh.creation.capsule(height=rng.uniform(0.8, 1.4), radius=rng.uniform(0.25, 0.4), count=[20, 24])
        sphere = trimesh.creation.uv_sphere(radius=1.0, count=[24, 32])
        v = np.asarray(sphere.vertices)
        if self.base == "boxy":
            exponent = rng.uniform(0.3, 0.6)
            v = np.sign(v) * np.abs(v) ** exponent
        else:  # blob: low-frequency radial bumps
            radius = np.ones(len(v))
            for _ in range(4):
                d = rng.normal(size=3)
                d /= np.linalg.norm(d)
                radius += rng.uniform(0.04, 0.14) * np.sin(rng.uniform(1.5, 4.0) * v @ d + rng.uniform(0, 6.3))
            v = v * radius[:, None]
        v = v * np.array([rng.uniform(0.5, 0.9), rng.uniform(0.5, 0.9), rng.uniform(0.8, 1.3)])
        return trimesh.Trimesh(v, sphere.faces, process=False)

    def _raw_vertices(self, t: float) -> np.ndarray:
        v = self.rest.copy()
        height = self.z_high - self.z_low
        for op in self.operations:
            p = self.params[op]
            wave = np.sin(2 * np.pi * p["cycles"] * t + p["phase"])
            h = (v[:, 2] - self.z_low) / height
            if op == "wave":
                d = p["direction"] / np.linalg.norm(p["direction"])
                ripple = np.sin(p["frequency"] * (self.rest @ d) - 2 * np.pi * p["cycles"] * t + p["phase"])
                v = v + p["amount"] * ripple[:, None] * self.rest_normals
            elif op == "squash":
                s = 1.0 + p["amount"] * wave
                v[:, 2] = self.z_low + (v[:, 2] - self.z_low) * s
                v[:, :2] /= np.sqrt(s)
            elif op == "twist":
                angle = p["amount"] * wave * h
                c, s_ = np.cos(angle), np.sin(angle)
                v[:, 0], v[:, 1] = c * v[:, 0] - s_ * v[:, 1], s_ * v[:, 0] + c * v[:, 1]
            elif op == "bend":
                v = _bend(v, self.z_low, height, p["amount"] * wave, p["direction"])
        return v


def _bend(v: np.ndarray, z_low: float, height: float, angle: float, direction: np.ndarray) -> np.ndarray:
    """Bend the column of points around a circle so its full height turns by ``angle``."""
    if abs(angle) < 1e-6:
        return v
    heading = np.arctan2(direction[1], direction[0])
    c, s = np.cos(heading), np.sin(heading)
    x = c * v[:, 0] + s * v[:, 1]  # along the bend direction
    y = -s * v[:, 0] + c * v[:, 1]
    radius = height / angle  # signed radius of curvature
    a = (v[:, 2] - z_low) / radius
    x_bent = radius - (radius - x) * np.cos(a)
    z_bent = z_low + (radius - x) * np.sin(a)
    out = np.empty_like(v)
    out[:, 0] = c * x_bent - s * y
    out[:, 1] = s * x_bent + c * y
    out[:, 2] = z_bent
    return out
