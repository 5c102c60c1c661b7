"""A minimal skeleton: forward kinematics of joint rotations and two-bone linear blend skinning."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Bone:
    parent: int  # -1 for the root
    joint: np.ndarray  # rest-pose position of the joint the bone rotates about


def forward_kinematics(bones: list[Bone], rotations: list[np.ndarray], root_offset: np.ndarray) -> np.ndarray:
    """Global transforms (B, 4, 4) mapping rest-pose points to posed points.

    ``rotations[b]`` (3, 3) turns bone b about its joint, expressed in rest-pose axes;
    parents must come before children. ``root_offset`` translates the whole skeleton.
    """
    transforms = np.zeros((len(bones), 4, 4))
    for index, (bone, rot) in enumerate(zip(bones, rotations, strict=True)):
        local = np.eye(4)
        local[:3, :3] = rot
        local[:3, 3] = bone.joint - rot @ bone.joint
        if bone.parent < 0:
            offset = np.eye(4)
            offset[:3, 3] = root_offset
            transforms[index] = offset @ local
        else:
            transforms[index] = transforms[bone.parent] @ local
    return transforms


def skin(rest: np.ndarray, bone_pair: np.ndarray, weight: np.ndarray, transforms: np.ndarray) -> np.ndarray:
    """Blend two bones per vertex: rest (N, 3), bone_pair (N, 2) int, weight (N,) of the first."""
    homogeneous = np.concatenate([rest, np.ones((len(rest), 1))], axis=1)
    first = np.einsum("nij,nj->ni", transforms[bone_pair[:, 0]], homogeneous)[:, :3]
    second = np.einsum("nij,nj->ni", transforms[bone_pair[:, 1]], homogeneous)[:, :3]
    return weight[:, None] * first + (1 - weight[:, None]) * second
