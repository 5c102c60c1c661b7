"""The keyframes' views moved to a time between them along optical flow, and the plane lift read from those
views: what LIM's in-betweens get in place of views nobody has at k+α.

LIM's tokens cannot change the plane lift (the views' features lifted onto the planes, geometry and, with the
colour prior, all the colour). Blending the keyframes' lifts shows a moving part at both of its places, each
at half strength. Warping each keyframe's views toward k+α along the flow between them (Farneback, both ways),
blending the two warps and lifting the result moves it with the object. World seeds 1000000-7, LIM's tokens:
blended lift 14.90 dB novel-view PSNR_FG, flow lift 15.46, the true views' lift 15.45 (benchmarks/RESULTS.md,
interp rows 8-11); the gain is in the lift's learned channels, its colour-prior channels alone gain nothing.
It needs nothing but the two keyframes' views, which LIM reads anyway.
"""

from __future__ import annotations

import numpy as np
import torch

from backend.io.optical_flow import FlowBetween
from backend.models.lrm import LRM

FLOW_WINDOW = 9  # Farneback averaging window in pixels of the model's input size (64²): objects span 20-50


def to_uint8(rgb: torch.Tensor) -> np.ndarray:
    """(V, 3, H, W) floats in [0, 1] -> (V, H, W, 3) uint8."""
    return (rgb.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)


def views_between(first: torch.Tensor, second: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    """The views of two keyframes (V, 3, H, W, floats in [0, 1], same cameras) at each α -> (len(α), V, 3, H, W)."""
    pairs = [FlowBetween(a, b, FLOW_WINDOW) for a, b in zip(to_uint8(first), to_uint8(second), strict=True)]
    frames = np.stack([np.stack([pair.at(float(alpha)) for pair in pairs]) for alpha in alphas.tolist()])
    return torch.as_tensor(frames / 255, dtype=first.dtype, device=first.device).permute(0, 1, 4, 2, 3)


def lifted_along_flow(lrm: LRM, first: torch.Tensor, second: torch.Tensor, projections: torch.Tensor,
                      alphas: torch.Tensor) -> torch.Tensor | None:
    """The plane lift (len(α), 3, C, R, R) of the keyframes' views moved to each α along their flow; None for
    models without a plane lift. first, second: the keyframes' model inputs (V, C_in, H, W), RGB first;
    projections (V, 3, 4) to their pixels."""
    if lrm.plane_lift is None:
        return None
    views = views_between(first[:, :3], second[:, :3], alphas)
    return lrm.plane_lift(views, projections.expand(len(alphas), -1, -1, -1))
