"""The reconstruction pipeline's core: keyframes -> LRM -> LIM in-betweens -> a triplane per frame.

Meshing, tracking and streaming build on this (later milestones).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from backend.io.cameras import Camera
from backend.models.lim import LIM
from backend.models.lrm import LRM, camera_projections
from backend.models.view_flow import lifted_along_flow


@dataclass
class Reconstruction:
    planes: list[torch.Tensor]  # (1, 3, C, R, R) per output frame
    keyframes: list[int]  # frame indices the LRM read
    times: np.ndarray  # clip time of each output position


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


def output_positions(frame_count: int, retime: float = 1.0, times: list[float] | None = None) -> np.ndarray:
    """Frame positions to output (float frame indices, first 0): every 1/retime frames, or the given ``times``."""
    if times is not None:
        positions = np.asarray(sorted(set(float(t) for t in times)), dtype=np.float64)
        if len(positions) == 0 or positions[0] < 0 or positions[-1] > frame_count - 1:
            raise ValueError(f"output times must lie in [0, {frame_count - 1}] (frame positions of the chosen range)")
        return positions if positions[0] == 0 else np.concatenate([[0.0], positions])
    if not retime >= 1:
        raise ValueError(f"retime must be >= 1 (extra in-betweens), got {retime}")
    count = round((frame_count - 1) * retime) + 1
    return np.linspace(0, frame_count - 1, count)


def segment_of(position: float, keys: list[int]) -> tuple[int, int]:
    """The keyframes (k, next) around a frame position; a keyframe position belongs to the segment it ends."""
    index = int(np.searchsorted(keys, position, side="left"))
    index = min(max(index, 1), len(keys) - 1)
    return keys[index - 1], keys[index]


@torch.no_grad()
def reconstruct_frames(lrm: LRM, lim: LIM, frames: np.ndarray, cameras: list[Camera], times: np.ndarray,
                       stride: int = 4, positions: np.ndarray | None = None, flow_lift: bool = True) -> Reconstruction:
    """frames (V, F, H, W, 3) uint8 from posed cameras -> a triplane at every output position (default: each frame).

    Keyframes go through the LRM; any position between keyframes k and k+1 (sub-frame ones too) is
    LIM(F_k, I_{k+1}, α) at the clip's own time, all in one batch per segment, its colour (the plane lift)
    read from the keyframes' views moved to α along optical flow (``flow_lift``; else their lifts blended).
    The networks run on their own device (a GPU when the backend has one); the triplanes come back on the CPU.
    """
    size = lrm.config.image_size
    device = next(lrm.parameters()).device
    frame_count = frames.shape[1]
    keys = keyframe_indices(frame_count, stride)
    positions = np.arange(frame_count, dtype=np.float64) if positions is None else np.asarray(positions, np.float64)
    position_times = np.interp(positions, np.arange(frame_count), times)
    inputs = {k: model_views(frames[:, k], cameras, size).to(device) for k in keys}
    projections = camera_projections(cameras, size)[None].to(device)
    outputs = {k: lrm(inputs[k][None], projections) for k in keys}
    planes: list[torch.Tensor | None] = [None] * len(positions)
    between: dict[tuple[int, int], list[int]] = {}
    for index, position in enumerate(positions):
        if float(position).is_integer() and int(position) in outputs:
            planes[index] = outputs[int(position)].planes.cpu()
        else:
            between.setdefault(segment_of(position, keys), []).append(index)
    for (k, nxt), indices in between.items():
        span = times[nxt] - times[k]
        alphas = torch.tensor([(position_times[i] - times[k]) / span if span > 0 else (positions[i] - k) / (nxt - k)
                               for i in indices], dtype=torch.float32, device=device)
        n = len(indices)
        start = outputs[k]
        hop = lim(start.tokens.expand(n, -1, -1), [f.expand(n, -1, -1) for f in start.features],
                  inputs[nxt][None].expand(n, -1, -1, -1, -1), alphas, outputs[nxt].tokens.expand(n, -1, -1))
        lifted = (lifted_along_flow(lrm, inputs[k], inputs[nxt], projections[0], alphas) if flow_lift
                  else LRM.lifted_between(start, outputs[nxt], alphas))
        segment_planes = lrm.tokens_to_planes(hop.tokens, lifted).cpu()
        for row, index in enumerate(indices):
            planes[index] = segment_planes[row:row + 1]
    return Reconstruction(planes, keys, position_times)
