"""Rigid multi-part machines: spinning rotors, hinged lids, carousels and pendulums."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from backend.world.objects import WorldObject
from backend.world.shapes import Part, box, cylinder, ellipsoid, merge, rotation

ASSEMBLIES = ("windmill", "chest", "carousel", "pendulum")
X, Y, Z = np.eye(3)


@dataclass
class Joint:
    """A rigid group of parts turning about ``axis`` through ``pivot`` by ``angle(t)``."""

    pivot: np.ndarray
    axis: np.ndarray
    angle: Callable[[float], float]


class RigidAssembly(WorldObject):
    family = "rigid"

    def __init__(self, seed: int, rng: np.random.Generator) -> None:
        super().__init__(seed, rng)
        self.motion = str(ASSEMBLIES[rng.integers(len(ASSEMBLIES))])
        cycles = float(rng.uniform(0.5, 2.0))
        phase = float(rng.uniform(0, 2 * np.pi))
        self.joints: list[Joint] = [Joint(np.zeros(3), Z, lambda t: 0.0)]
        parts: list[Part] = []
        groups: list[int] = []

        def add(part: Part, group: int) -> None:
            parts.append(part)
            groups.append(group)

        if self.motion == "windmill":
            height = rng.uniform(0.8, 1.3)
            add(box(np.array([0, 0, height / 2]), np.array([0.25, 0.25, height])), 0)
            hub = np.array([0.2, 0.0, height * 0.9])
            self.joints.append(Joint(hub, X, lambda t: 2 * np.pi * cycles * t + phase))
            add(cylinder(hub, 0.07, 0.12, rotation(Y, np.pi / 2)), 1)
            blades = int(rng.integers(3, 6))
            length = rng.uniform(0.45, 0.7)
            for k in range(blades):
                turn = rotation(X, 2 * np.pi * k / blades)
                add(box(hub + turn @ np.array([0.04, 0, length / 2]), np.array([0.03, 0.1, length]), turn), 1)
        elif self.motion == "chest":
            w, d, h = rng.uniform(0.6, 1.0), rng.uniform(0.4, 0.7), rng.uniform(0.3, 0.5)
            add(box(np.array([0, 0, h / 2]), np.array([w, d, h])), 0)
            hinge = np.array([0.0, -d / 2, h])
            opening = rng.uniform(0.7, 1.7)
            self.joints.append(Joint(hinge, X, lambda t: opening * 0.5 * (1 - np.cos(2 * np.pi * cycles * t + phase))))
            add(box(np.array([0, 0, h + 0.04]), np.array([w, d, 0.08])), 1)
        elif self.motion == "carousel":
            height = rng.uniform(0.6, 1.0)
            add(cylinder(np.array([0, 0, 0.05]), 0.45, 0.1), 0)
            self.joints.append(Joint(np.zeros(3), Z, lambda t: 2 * np.pi * cycles * t + phase))
            add(cylinder(np.array([0, 0, height / 2]), 0.05, height), 1)
            add(cylinder(np.array([0, 0, height]), rng.uniform(0.4, 0.6), 0.06), 1)
            seats = int(rng.integers(3, 6))
            for k in range(seats):
                a = 2 * np.pi * k / seats
                where = np.array([0.35 * np.cos(a), 0.35 * np.sin(a), height * 0.5])
                add(ellipsoid(where, np.array([0.1, 0.07, 0.09]), rings=8, segments=12), 1)
        else:  # pendulum
            span, height = rng.uniform(0.6, 0.9), rng.uniform(0.9, 1.3)
            for side in (-1, 1):
                add(box(np.array([0, side * span / 2, height / 2]), np.array([0.06, 0.06, height])), 0)
            add(box(np.array([0, 0, height]), np.array([0.06, span + 0.06, 0.06])), 0)
            top = np.array([0.0, 0.0, height])
            swing = rng.uniform(0.4, 0.9)
            self.joints.append(Joint(top, Y, lambda t: swing * np.sin(2 * np.pi * cycles * t + phase)))
            rod = height * rng.uniform(0.6, 0.75)
            add(cylinder(top - np.array([0, 0, rod / 2]), 0.015, rod), 1)
            add(ellipsoid(top - np.array([0, 0, rod]), np.full(3, rng.uniform(0.08, 0.14))), 1)
        self.yaw_cycles = float(rng.choice([0.0, rng.uniform(-0.3, 0.3)]))
        self.rest, self.faces, self.part_ids = merge(parts)
        self.group = np.concatenate([np.full(len(p.vertices), g) for p, g in zip(parts, groups, strict=True)])
        self._finish()

    def _raw_vertices(self, t: float) -> np.ndarray:
        v = self.rest.copy()
        for index, joint in enumerate(self.joints[1:], start=1):
            moving = self.group == index
            rot = rotation(joint.axis, joint.angle(t))
            v[moving] = (v[moving] - joint.pivot) @ rot.T + joint.pivot
        if self.yaw_cycles:
            v = v @ rotation(Z, 2 * np.pi * self.yaw_cycles * t).T
        return v
