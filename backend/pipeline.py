"""The reconstruction pipeline's core: keyframes -> LRM -> LIM in-betweens -> a triplane per frame.

Meshing, tracking and streaming build on this (later milestones).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from backend.io.cameras import Camera
from backend.models.lim import LIM
from backend.models.lrm import LRM, camera_projections


@dataclass
class Reconstruction:
    planes: list[torch.Tensor]  # (1, 3, C, R, R) per output frame
    keyframes: list[int]  # frame indices the LRM read
    times: np.ndarray  # frame times


def model_views(frames: np.ndarray, cameras: list[Camera], size: int) -> torch.Tensor:
    """uint8 RGB views (V, H, W, 3) over white -> model input (V, 9, size, size): RGB ⊕ Plücker."""
    rgb = torch.as_tensor(frames).float().permute(0, 3, 1, 2) / 255
    if rgb.shape[-1] != size or rgb.shape[-2] != size:
        rgb = F.interpolate(rgb, size=(size, size), mode="area")
    plucker = torch.as_tensor(np.stack([c.resized(size, size).plucker() for c in cameras]))
    return torch.cat([rgb, plucker], dim=1)


def keyframe_indices(frame_count: int, stride: int) -> list[int]:
    """Every ``stride``-th frame, and always the last one, so every frame lies between two keyframes."""
    keys = list(range(0, frame_count, stride))
    if keys[-1] != frame_count - 1:
        keys.append(frame_count - 1)
    return keys


@torch.no_grad()
def reconstruct_frames(lrm: LRM, lim: LIM, frames: np.ndarray, cameras: list[Camera], times: np.ndarray,
                       stride: int = 4) -> Reconstruction:
    """frames (V, F, H, W, 3) uint8 from posed cameras -> a triplane for every frame.

    Keyframes go through the LRM; the frames between keyframes k and k+1 are LIM(F_k, I_{k+1}, α),
    all in one batch per segment.
    """
    size = lrm.config.image_size
    keys = keyframe_indices(frames.shape[1], stride)
    inputs = {k: model_views(frames[:, k], cameras, size) for k in keys}
    projections = camera_projections(cameras, size)[None]
    outputs = {k: lrm(inputs[k][None], projections) for k in keys}
    planes: list[torch.Tensor | None] = [None] * frames.shape[1]
    for k, nxt in itertools.pairwise(keys):
        planes[k] = outputs[k].planes
        between = list(range(k + 1, nxt))
        if not between:
            continue
        span = times[nxt] - times[k]
        alphas = torch.tensor([(times[f] - times[k]) / span if span > 0 else (f - k) / (nxt - k) for f in between],
                              dtype=torch.float32)
        n = len(between)
        start = outputs[k]
        hop = lim(start.tokens.expand(n, -1, -1), [f.expand(n, -1, -1) for f in start.features],
                  inputs[nxt][None].expand(n, -1, -1, -1, -1), alphas, outputs[nxt].tokens.expand(n, -1, -1))
        for index, frame in enumerate(between):
            planes[frame] = lrm.tokens_to_planes(hop.tokens[index:index + 1])
    planes[keys[-1]] = outputs[keys[-1]].planes
    return Reconstruction(planes, keys, times)
