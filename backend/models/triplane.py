"""Triplanes: sampling features at 3D points, and the MLP that decodes them into fields."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from backend.models.config import ModelConfig

# Plane axes: XY, XZ, YZ (each plane is indexed by the two coordinates it spans).
PLANE_AXES = ((0, 1), (0, 2), (1, 2))
PRIOR_GATE_START, PRIOR_GATE_SCALE = 0.5, 4.0


def sample_planes(planes: torch.Tensor, points: torch.Tensor, bound: float) -> torch.Tensor:
    """Features (B, P, C) at points (B, P, 3) from planes (B, 3, C, R, R), summed over planes."""
    coords = points / bound
    features = 0
    for index, (u, v) in enumerate(PLANE_AXES):
        grid = coords[..., [u, v]].unsqueeze(1)  # (B, 1, P, 2): x indexes width, y height
        sampled = F.grid_sample(planes[:, index], grid, mode="bilinear", padding_mode="border", align_corners=False)
        features = features + sampled[:, :, 0].transpose(1, 2)
    return features


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
