"""Triplanes: sampling features at 3D points, and the MLP that decodes them into fields."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse
import torch
import torch.nn.functional as F
from torch import nn

from backend.models.config import ModelConfig

# Plane axes: XY, XZ, YZ (each plane is indexed by the two coordinates it spans).
PLANE_AXES = ((0, 1), (0, 2), (1, 2))
PLANE_COORDS = [axis for pair in PLANE_AXES for axis in pair]  # each plane's (width, height) coordinates in turn
PRIOR_GATE_START, PRIOR_GATE_SCALE = 0.5, 4.0


def sample_planes(planes: torch.Tensor, points: torch.Tensor, bound: float) -> torch.Tensor:
    """Features (B, P, C) at points (B, P, 3) from planes (B, 3, C, R, R), bilinear with border padding (as
    ``grid_sample`` with ``align_corners=False``), summed over planes."""
    if planes.is_cuda or planes.dtype != torch.float32 or (torch.is_grad_enabled() and points.requires_grad):
        return sample_planes_grid(planes, points, bound)
    # On the CPU grid_sample runs one thread per batch item and scatters its backward serially. The same sum as
    # a weighted embedding bag over the 3 planes x 4 corners reads in a third of the time, and its gradient, one
    # sparse product, takes a quarter (a keyframe's fit: ~8 -> ~4 s)
    b, _, channels, size, _ = planes.shape
    count = points.shape[1]
    coords = (points / bound)[..., PLANE_COORDS].view(b, count, 3, 2)
    pixel = (((coords + 1) * size - 1) / 2).clamp(0, size - 1)
    low = pixel.floor()
    frac = pixel - low
    x0, y0 = low[..., 0].long(), low[..., 1].long()
    x1, y1 = (x0 + 1).clamp(max=size - 1), (y0 + 1).clamp(max=size - 1)
    first_row = (torch.arange(b * 3, device=planes.device).view(b, 1, 3)) * size * size  # of each plane in the table
    index = torch.stack([y0 * size + x0, y0 * size + x1, y1 * size + x0, y1 * size + x1], dim=-1) + first_row[..., None]
    fx, fy = frac[..., 0], frac[..., 1]
    weight = torch.stack([(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx], dim=-1)
    table = planes.permute(0, 1, 3, 4, 2).reshape(b * 3 * size * size, channels)
    features = _WeightedRows.apply(table, index.view(b * count, 12), weight.view(b * count, 12))
    return features.view(b, count, channels)


class _WeightedRows(torch.autograd.Function):
    """out[p] = sum_k weight[p, k] * table[index[p, k]]; the gradient reaches ``table`` only."""

    @staticmethod
    def forward(ctx, table: torch.Tensor, index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(index, weight)
        ctx.rows = table.shape[0]
        return F.embedding_bag(index, table, per_sample_weights=weight, mode="sum")

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        index, weight = ctx.saved_tensors
        count, per_row = index.shape
        spread = scipy.sparse.csr_matrix((weight.numpy().ravel(), index.numpy().ravel(),
                                          np.arange(0, count * per_row + 1, per_row)), shape=(count, ctx.rows))
        return torch.from_numpy(np.ascontiguousarray(spread.T @ grad.contiguous().numpy())), None, None


def sample_planes_grid(planes: torch.Tensor, points: torch.Tensor, bound: float) -> torch.Tensor:
    """``sample_planes`` through ``grid_sample``, the three planes as one batch (on the CPU a quarter faster
    than three calls: the kernels run one thread per batch item)."""
    b, _, channels, size, _ = planes.shape
    count = points.shape[1]
    grid = (points / bound)[..., PLANE_COORDS].view(b, count, 3, 2).transpose(1, 2).reshape(b * 3, 1, count, 2)
    sampled = F.grid_sample(planes.reshape(b * 3, channels, size, size), grid, mode="bilinear", padding_mode="border",
                            align_corners=False)
    return sampled.view(b, 3, channels, count).sum(dim=1).transpose(1, 2)


@dataclass
class FieldSample:
    density: torch.Tensor  # (B, P) >= 0
    rgb: torch.Tensor  # (B, P, 3) in [0, 1]
    canonical: torch.Tensor | None  # (B, P, 3) canonical coordinates, when the model has them


class TriplaneDecoder(nn.Module):
    """MLP heads: density and RGB (and canonical coordinates) from summed plane features."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        width = config.plane_channels
        for _ in range(config.decoder_layers - 1):
            layers += [nn.Linear(width, config.decoder_hidden), nn.SiLU()]
            width = config.decoder_hidden
        self.trunk = nn.Sequential(*layers)
        self.density = nn.Linear(width, 1)
        self.rgb = nn.Linear(width, 3)
        self.canonical = nn.Linear(width, 3) if config.canonical else None
        if self.canonical is not None and config.canonical_offset:
            nn.init.zeros_(self.canonical.weight)  # start at the identity: every point where it was at frame 0
            nn.init.zeros_(self.canonical.bias)
        # how much the RGB leans on the colour prior; scaled so that Adam's ~lr steps move it quickly
        self.prior_gate = nn.Parameter(torch.tensor(PRIOR_GATE_START / PRIOR_GATE_SCALE)) if config.colour_prior else None

    def forward(self, planes: torch.Tensor, points: torch.Tensor) -> FieldSample:
        features = sample_planes(planes, points, self.config.bound)
        h = self.trunk(features[..., :self.config.plane_channels])
        inside = (points.abs() <= self.config.bound).all(dim=-1)
        # shifted, scaled softplus: mostly empty space at initialisation, opaque surfaces reachable
        density = 8.0 * F.softplus(self.density(h)[..., 0] - 4.0) * inside
        logits = self.rgb(h)
        if self.prior_gate is not None:
            prior = (features[..., self.config.plane_channels:] / 3).clamp(0.02, 0.98)  # the 3 planes' mean
            logits = logits + PRIOR_GATE_SCALE * self.prior_gate * torch.logit(prior)
        rgb = torch.sigmoid(logits)
        canonical = None
        if self.canonical is not None:
            canonical = self.config.bound * torch.tanh(self.canonical(h))
            if self.config.canonical_offset:
                canonical = points + canonical
        return FieldSample(density, rgb, canonical)
