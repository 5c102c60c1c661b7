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
BACKGROUND_LEVEL = 0.98  # a pixel this close to white in every channel is background


def token_points(tokens_per_side: int, bound: float, sub: int = SUB) -> torch.Tensor:
    """Sample points (3·n², sub², LINE_SAMPLES, 3), cells in the planes' (plane, row, column) order."""
    n = tokens_per_side
    across = (torch.arange(n * sub, dtype=torch.float32) + 0.5) / (n * sub) * 2 - 1  # sub-cell centres
    along = (torch.arange(LINE_SAMPLES, dtype=torch.float32) + 0.5) / LINE_SAMPLES * 2 - 1
    planes = []
    for a, b in PLANE_AXES:
        c = 3 - a - b
        # row index i follows axis b (plane height), column j follows axis a (plane width)
        grid_b, grid_a, grid_c = torch.meshgrid(across, across, along, indexing="ij")
        points = torch.zeros(n * sub, n * sub, LINE_SAMPLES, 3)
        points[..., a], points[..., b], points[..., c] = grid_a, grid_b, grid_c
        points = points.view(n, sub, n, sub, LINE_SAMPLES, 3).permute(0, 2, 1, 3, 4, 5)
        planes.append(points.reshape(n * n, sub * sub, LINE_SAMPLES, 3))
    return torch.cat(planes) * bound


def view_statistics(rgb: torch.Tensor, projections: torch.Tensor, points: torch.Tensor,
                    with_background: bool = False) -> torch.Tensor:
    """What the views see at each point: (B, Q, STATS) mean RGB, RGB spread, fraction of views seeing it
    (and, with_background, an 8th: the fraction of views that see white background there).

    rgb (B, V, 3, H, W) over white; projections (B, V, 3, 4) to pixels; points (Q, 3).
    """
    b, v, _, h, w = rgb.shape
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
    stats = [mean, std, seen.mean(dim=1)[..., None]]
    if with_background:
        stats.append((colour.min(dim=-1).values > BACKGROUND_LEVEL).float().mean(dim=1)[..., None])
    return torch.cat(stats, dim=-1)


class ViewLift(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.register_buffer("points", token_points(config.triplane_tokens, config.bound), persistent=False)
        self.linear = nn.Linear(SUB * SUB * LINE_SAMPLES * STATS, config.dim)

    def forward(self, rgb: torch.Tensor, projections: torch.Tensor) -> torch.Tensor:
        """rgb (B, V, 3, H, W) over white; projections (B, V, 3, 4) to pixels -> (B, 3·n², D)."""
        stats = view_statistics(rgb, projections, self.points.reshape(-1, 3))
        return self.linear(stats.reshape(rgb.shape[0], self.points.shape[0], -1))


class PlaneLift(nn.Module):
    """The same view statistics per plane texel, added to the planes after the deconvolution.

    The token lift reaches the planes through 8x8-texel deconvolution patches, too coarse for
    colour: the tiny LRM trained with it alone rendered every object grey. This path gives each
    texel the colours the views agree on along its own line. Its last layer starts at zero, so a
    model warm-started with it computes what it did before until it learns to use it.
    """

    def __init__(self, config: ModelConfig, hidden: int = 64) -> None:
        super().__init__()
        self.colour_prior = config.colour_prior
        self.resolution = config.plane_resolution
        points = token_points(config.plane_resolution, config.bound, sub=1)  # (3·R², 1, S, 3)
        self.register_buffer("points", points.reshape(-1, 3), persistent=False)
        self.mlp = nn.Sequential(nn.Linear(LINE_SAMPLES * STATS, hidden), nn.SiLU(), nn.Linear(hidden, config.plane_channels))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, rgb: torch.Tensor, projections: torch.Tensor) -> torch.Tensor:
        """rgb (B, V, 3, H, W) over white; projections (B, V, 3, 4) -> planes (B, 3, C, R, R)."""
        b, r = rgb.shape[0], self.resolution
        stats = view_statistics(rgb, projections, self.points, with_background=self.colour_prior)
        stats = stats.reshape(b, 3, r, r, LINE_SAMPLES, -1)
        lifted = self.mlp(stats[..., :STATS].flatten(-2))
        if self.colour_prior:
            lifted = torch.cat([lifted, line_colour(stats)], dim=-1)
        return lifted.permute(0, 1, 4, 2, 3)


def line_colour(stats: torch.Tensor) -> torch.Tensor:
    """(..., 3) the colour along each line where every view sees the object (the visual hull), white if nowhere.

    stats (..., LINE_SAMPLES, 8) from view_statistics(with_background=True). Inside the hull the
    views' mean colour is the object's own; points where some views see background are let go, and
    points where the views disagree are weighted down.
    """
    inside = (1 - stats[..., 7]) * stats[..., 6]  # no view sees background, and all see the point
    # photo-consistency: samples the views agree on (the surface, not pixels blended at an edge) count most
    weights = inside.pow(4) * torch.exp(-stats[..., 3:6].sum(dim=-1) / 0.1)
    total = weights.sum(dim=-1, keepdim=True)
    colour = (weights[..., None] * stats[..., :3]).sum(dim=-2) / total.clamp_min(1e-6)
    return torch.where(total > 1e-3, colour, torch.ones_like(colour))
