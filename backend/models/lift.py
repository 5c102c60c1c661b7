"""Lift views onto the triplane: what every input view shows along each triplane token's line.

A token of the XY plane stands for a column of space along Z (XZ: along Y, YZ: along X). We
sample points along that line (and 2x2 positions across the token), project them into every
input view and summarise the colours the views see there: their mean, their spread (views of
the same surface point agree, photo-consistency) and how many views see the point at all.
Objects sit on white backgrounds, so this is also a soft visual hull. It gives the transformer
geometry to refine rather than to discover, which a tiny model trained on a CPU needs; the
LIM paper's LRM is a pure transformer (its compute budget is thousands of GPU hours).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from backend.models.config import ModelConfig
from backend.models.triplane import PLANE_AXES

LINE_SAMPLES, SUB = 16, 2
STATS = 7  # mean RGB, std RGB, fraction of views that see the point


def token_points(tokens_per_side: int, bound: float) -> torch.Tensor:
    """Sample points (3·n², SUB², LINE_SAMPLES, 3), tokens in the LRM's (plane, row, column) order."""
    n = tokens_per_side
    across = (torch.arange(n * SUB, dtype=torch.float32) + 0.5) / (n * SUB) * 2 - 1  # sub-cell centres
    along = (torch.arange(LINE_SAMPLES, dtype=torch.float32) + 0.5) / LINE_SAMPLES * 2 - 1
    planes = []
    for a, b in PLANE_AXES:
        c = 3 - a - b
        # row index i follows axis b (plane height), column j follows axis a (plane width)
        grid_b, grid_a, grid_c = torch.meshgrid(across, across, along, indexing="ij")
        points = torch.zeros(n * SUB, n * SUB, LINE_SAMPLES, 3)
        points[..., a], points[..., b], points[..., c] = grid_a, grid_b, grid_c
        points = points.view(n, SUB, n, SUB, LINE_SAMPLES, 3).permute(0, 2, 1, 3, 4, 5)
        planes.append(points.reshape(n * n, SUB * SUB, LINE_SAMPLES, 3))
    return torch.cat(planes) * bound


class ViewLift(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.register_buffer("points", token_points(config.triplane_tokens, config.bound), persistent=False)
        self.linear = nn.Linear(SUB * SUB * LINE_SAMPLES * STATS, config.dim)

    def forward(self, rgb: torch.Tensor, projections: torch.Tensor) -> torch.Tensor:
        """rgb (B, V, 3, H, W) over white; projections (B, V, 3, 4) to pixels -> (B, 3·n², D)."""
        b, v, _, h, w = rgb.shape
        points = self.points.reshape(-1, 3)
        homogeneous = torch.cat([points, torch.ones_like(points[:, :1])], dim=1)
        uvw = torch.einsum("bvij,qj->bvqi", projections, homogeneous)
        depth = uvw[..., 2]
        safe = torch.where(depth.abs() < 1e-6, torch.full_like(depth, 1e-6), depth)
        x = uvw[..., 0] / safe / w * 2 - 1
        y = uvw[..., 1] / safe / h * 2 - 1
        seen = ((depth > 1e-3) & (x.abs() <= 1) & (y.abs() <= 1)).float()  # (B, V, Q)
        grid = torch.stack([x, y], dim=-1).reshape(b * v, 1, -1, 2)
        colour = F.grid_sample(rgb.reshape(b * v, 3, h, w), grid.clamp(-2, 2), align_corners=False)
        colour = colour.view(b, v, 3, -1).permute(0, 1, 3, 2)  # (B, V, Q, 3)
        colour = colour * seen[..., None] + (1 - seen[..., None])  # unseen reads as background
        mean = colour.mean(dim=1)
        std = (colour - mean[:, None]).pow(2).mean(dim=1).add(1e-6).sqrt()
        stats = torch.cat([mean, std, seen.mean(dim=1)[..., None]], dim=-1)  # (B, Q, 7)
        tokens = self.points.shape[0]
        return self.linear(stats.reshape(b, tokens, -1))
