"""Articulated creatures: a torso, head, tail and two-segment limbs on a skeleton.

Quadrupeds and bipeds face +X and stand on +Z; limbs hang straight down in the rest pose and
are skinned smoothly across the knee/elbow. Motions: walk, run, wave, jump cycles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.world.objects import WorldObject, bump, smoothstep
from backend.world.shapes import Part, capsule_down, ellipsoid, merge, rotation
from backend.world.skeleton import Bone, forward_kinematics, skin

MOTIONS = ("walk", "run", "wave", "jump")
X, Y, Z = np.eye(3)


@dataclass
class Limb:
    upper_bone: int
    lower_bone: int
    upper_length: float
    phase: float  # gait phase offset (radians)
    is_arm: bool
    side: float  # +1 left (+Y), -1 right


class Creature(WorldObject):
    family = "creature"

    def __init__(self, seed: int, rng: np.random.Generator) -> None:
        super().__init__(seed, rng)
        self.biped = bool(rng.random() < 0.4)
        self.motion = str(MOTIONS[rng.integers(len(MOTIONS))])
        self.cycles = float(rng.uniform(1.0, 2.0) * (1.6 if self.motion == "run" else 1.0))
        if self.motion == "jump":
            self.cycles = float(rng.integers(1, 3))
        self.amplitude = float(rng.uniform(0.7, 1.0))
        self.phase0 = float(rng.uniform(0, 2 * np.pi))
        self.bones: list[Bone] = [Bone(-1, np.zeros(3))]
        self.limbs: list[Limb] = []
        parts: list[Part] = []
        skinning: list[tuple[np.ndarray, np.ndarray]] = []  # (bone pair, weight) per part
        if self.biped:
            self._build_biped(rng, parts, skinning)
        else:
            self._build_quadruped(rng, parts, skinning)
        self.rest, self.faces, self.part_ids = merge(parts)
        self.bone_pair = np.concatenate([pair for pair, _ in skinning])
        self.weight = np.concatenate([w for _, w in skinning])
        self._finish()

    # ------------------------------------------------------------------ building
    def _add_bone(self, parent: int, joint: np.ndarray) -> int:
        self.bones.append(Bone(parent, np.asarray(joint, dtype=np.float64)))
        return len(self.bones) - 1

    @staticmethod
    def _rigid(part: Part, bone: int) -> tuple[np.ndarray, np.ndarray]:
        n = len(part.vertices)
        return np.full((n, 2), bone), np.ones(n)

    def _add_limb(self, top: np.ndarray, length: float, radius: float, phase: float, is_arm: bool,
                  parts: list[Part], skinning: list) -> None:
        upper_length = length * self.rng.uniform(0.45, 0.55)
        upper = self._add_bone(0, top)
        lower = self._add_bone(upper, top - upper_length * Z)
        part = capsule_down(top, length, radius)
        along = top[2] - part.vertices[:, 2]  # distance down the limb in the rest pose
        blend = 0.6 * radius
        w_upper = 1.0 - smoothstep(upper_length - blend, upper_length + blend, along)
        pair = np.tile(np.array([upper, lower]), (len(along), 1))
        parts.append(part)
        skinning.append((pair, w_upper))
        self.limbs.append(Limb(upper, lower, upper_length, phase, is_arm, float(np.sign(top[1]) or 1.0)))

    def _build_quadruped(self, rng: np.random.Generator, parts: list[Part], skinning: list) -> None:
        leg = rng.uniform(0.35, 0.6)
        leg_r = rng.uniform(0.05, 0.09)
        radii = np.array([rng.uniform(0.3, 0.5), rng.uniform(0.15, 0.25), rng.uniform(0.13, 0.22)])
        torso_z = leg + radii[2] * 0.5
        self.bones[0].joint = np.array([0.0, 0.0, torso_z])
        parts.append(ellipsoid(self.bones[0].joint, radii))
        skinning.append(self._rigid(parts[-1], 0))
        head_r = rng.uniform(0.11, 0.19)
        neck = self._add_bone(0, np.array([radii[0] * 0.8, 0.0, torso_z + radii[2] * 0.3]))
        head_centre = np.array([radii[0] + head_r * 0.5, 0.0, torso_z + radii[2] + head_r * 0.3])
        parts.append(ellipsoid(head_centre, head_r * np.array([1.3, 1.0, 1.0])))
        skinning.append(self._rigid(parts[-1], neck))
        self.neck = neck
        self.tail = -1
        if rng.random() < 0.7:
            self.tail = self._add_bone(0, np.array([-radii[0] * 0.9, 0.0, torso_z + radii[2] * 0.2]))
            tail = capsule_down(self.bones[self.tail].joint, rng.uniform(0.2, 0.4), rng.uniform(0.025, 0.05))
            tilt = rotation(Y, np.radians(rng.uniform(110, 150)))
            tail.vertices = (tail.vertices - self.bones[self.tail].joint) @ tilt.T + self.bones[self.tail].joint
            parts.append(tail)
            skinning.append(self._rigid(tail, self.tail))
        gait = {"walk": (0.0, np.pi, 0.5 * np.pi, 1.5 * np.pi), "run": (0.0, 0.3, np.pi, np.pi + 0.3)}
        phases = gait.get(self.motion, (0.0, np.pi, np.pi, 0.0))
        hip_z = torso_z - radii[2] * 0.3
        for (sx, sy), phase in zip(((1, 1), (1, -1), (-1, 1), (-1, -1)), phases, strict=True):
            top = np.array([sx * radii[0] * 0.6, sy * radii[1] * 0.6, hip_z])
            self._add_limb(top, hip_z - leg_r, leg_r, phase, sx > 0, parts, skinning)

    def _build_biped(self, rng: np.random.Generator, parts: list[Part], skinning: list) -> None:
        leg = rng.uniform(0.4, 0.6)
        leg_r = rng.uniform(0.06, 0.09)
        radii = np.array([rng.uniform(0.14, 0.2), rng.uniform(0.18, 0.26), rng.uniform(0.25, 0.35)])
        torso_z = leg + radii[2] * 0.8
        self.bones[0].joint = np.array([0.0, 0.0, torso_z])
        parts.append(ellipsoid(self.bones[0].joint, radii))
        skinning.append(self._rigid(parts[-1], 0))
        head_r = rng.uniform(0.12, 0.18)
        self.neck = self._add_bone(0, np.array([0.0, 0.0, torso_z + radii[2] * 0.9]))
        parts.append(ellipsoid(np.array([0.0, 0.0, torso_z + radii[2] + head_r * 0.8]), np.full(3, head_r)))
        skinning.append(self._rigid(parts[-1], self.neck))
        self.tail = -1
        hip_z = torso_z - radii[2] * 0.75
        for side, phase in ((1, 0.0), (-1, np.pi)):
            self._add_limb(np.array([0.0, side * radii[1] * 0.5, hip_z]), hip_z - leg_r, leg_r, phase, False, parts, skinning)
        arm = rng.uniform(0.35, 0.55)
        arm_r = rng.uniform(0.04, 0.065)
        for side, phase in ((1, np.pi), (-1, 0.0)):
            top = np.array([0.0, side * (radii[1] + arm_r * 1.2), torso_z + radii[2] * 0.55])
            self._add_limb(top, arm, arm_r, phase, True, parts, skinning)

    # ------------------------------------------------------------------ motion
    def _limb_angles(self, limb: Limb, phi: float, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Rotations of the upper and lower segment of one limb at gait phase ``phi``."""
        a = self.amplitude
        if self.motion in ("walk", "run"):
            swing = (0.45 if self.motion == "walk" else 0.8) * a
            knee = (0.5 if self.motion == "walk" else 1.1) * a
            hip = swing * np.sin(phi + limb.phase)
            bend = knee * max(0.0, np.sin(phi + limb.phase + np.pi / 2))
            # knees fold backwards (+Y rotation moves the foot to -X), elbows forwards
            return rotation(Y, hip), rotation(Y, -bend if limb.is_arm else bend)
        if self.motion == "jump":
            p = (self.cycles * t) % 1.0
            crouch = bump(p, 0.0, 0.25) + bump(p, 0.75, 1.0)
            air = bump(p, 0.25, 0.75)
            if limb.is_arm and self.biped:
                return rotation(X, -limb.side * 2.2 * a * air), rotation(Y, -0.3 * air)
            fold = 0.9 * a * crouch + 0.7 * a * air
            return rotation(Y, -0.5 * fold), rotation(Y, fold)
        # wave: the first arm (biped) or front-left leg (quadruped) waves, the rest idle
        if limb is self.limbs[2 if self.biped else 0]:
            raise_amount = smoothstep(0.0, 0.2, t)
            swing = 0.45 * a * np.sin(phi)
            if self.biped:
                return rotation(X, limb.side * 2.3 * raise_amount), rotation(X, limb.side * (0.4 + swing) * raise_amount)
            return rotation(Y, -1.2 * raise_amount), rotation(Y, (0.6 + swing) * raise_amount)
        return rotation(Y, 0.05 * np.sin(phi + limb.phase)), np.eye(3)

    def _raw_vertices(self, t: float) -> np.ndarray:
        phi = 2 * np.pi * self.cycles * t + self.phase0
        rotations = [np.eye(3) for _ in self.bones]
        offset = np.zeros(3)
        if self.motion in ("walk", "run"):
            bob = 0.015 if self.motion == "walk" else 0.05
            offset[2] = bob * self.amplitude * abs(np.sin(phi))
            lean = 0.0 if self.motion == "walk" else 0.12
            rotations[0] = rotation(Y, lean + 0.04 * np.sin(2 * phi))
        elif self.motion == "jump":
            p = (self.cycles * t) % 1.0
            height = 0.45 * self.amplitude
            offset[2] = height * bump(p, 0.25, 0.75) - 0.08 * (bump(p, 0.0, 0.25) + bump(p, 0.75, 1.0))
        rotations[self.neck] = rotation(Y, 0.12 * np.sin(2 * phi))
        if self.tail >= 0:
            rotations[self.tail] = rotation(Z, 0.5 * np.sin(2 * phi))
        for limb in self.limbs:
            rotations[limb.upper_bone], rotations[limb.lower_bone] = self._limb_angles(limb, phi, t)
        transforms = forward_kinematics(self.bones, rotations, offset)
        return skin(self.rest, self.bone_pair, self.weight, transforms)
