"""Multi-view LRM: posed views -> triplane (and the intermediate features LIM attends to)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from backend.io.cameras import Camera
from backend.models.blocks import LRMBlock, patchify
from backend.models.config import ModelConfig
from backend.models.lift import PlaneLift, ViewLift
from backend.models.triplane import TriplaneDecoder


@dataclass
class LRMOutput:
    tokens: torch.Tensor  # (B, 3·n², D) final triplane tokens
    features: list[torch.Tensor]  # outputs of the last L blocks, each (B, 3·n², D)
    planes: torch.Tensor  # (B, 3, C, R, R)
    lifted: torch.Tensor | None = None  # (B, 3, C, R, R) the plane lift's share of ``planes``


class ImageTokenizer(nn.Module):
    """Patchified RGB ⊕ Plücker (⊕ canonical XYZ) views -> linear tokens (B, V·N, D)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.patch = config.patch_size
        self.linear = nn.Linear(config.input_channels * config.patch_size**2, config.dim)
        self.norm = nn.LayerNorm(config.dim)

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        return self.norm(self.linear(patchify(views, self.patch)))


def camera_projections(cameras: list[Camera], size: int | None = None) -> torch.Tensor:
    """(V, 3, 4) float32 projections to the pixels of each camera (resized to size² when given)."""
    resized = [c.resized(size, size) if size else c for c in cameras]
    return torch.as_tensor(np.stack([c.projection() for c in resized]), dtype=torch.float32)


class LRM(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        n = config.triplane_tokens
        self.tokenizer = ImageTokenizer(config)
        self.triplane_tokens = nn.Parameter(torch.randn(3 * n * n, config.dim) * 0.02)
        self.lift = ViewLift(config)
        self.plane_lift = PlaneLift(config) if config.plane_lift else None
        self.blocks = nn.ModuleList(LRMBlock(config.dim, config.heads, config.mlp_ratio) for _ in range(config.lrm_blocks))
        self.norm_out = nn.LayerNorm(config.dim)
        scale = config.plane_resolution // n
        self.upsample = nn.ConvTranspose2d(config.dim, config.plane_channels, kernel_size=scale, stride=scale)
        self.decoder = TriplaneDecoder(config)

    def views_input(self, rgb: torch.Tensor, plucker: torch.Tensor, canonical: torch.Tensor | None = None) -> torch.Tensor:
        """Stack per-view channels (B, V, C, H, W) in the order the tokenizer expects."""
        parts = [rgb, plucker]
        if self.config.canonical:
            parts.append(torch.zeros_like(rgb) if canonical is None else canonical)
        return torch.cat(parts, dim=2)

    def tokens_to_planes(self, tokens: torch.Tensor, lifted: torch.Tensor | None = None) -> torch.Tensor:
        """Triplane tokens (B, 3·n², D) (plus the plane lift's share, when the model has one) -> planes (B, 3, C, R, R)."""
        if (lifted is None) != (self.plane_lift is None):
            raise ValueError("planes from tokens need the plane lift's share exactly when the model has a plane lift")
        b = tokens.shape[0]
        n = self.config.triplane_tokens
        grid = self.norm_out(tokens).view(b * 3, n, n, -1).permute(0, 3, 1, 2)
        planes = self.upsample(grid)
        planes = planes.view(b, 3, *planes.shape[1:])
        if self.config.colour_prior:  # the tokens add nothing to the colour channels; the lift fills them
            planes = torch.cat([planes, planes.new_zeros(b, 3, 3, *planes.shape[-2:])], dim=2)
        return planes if lifted is None else planes + lifted

    @staticmethod
    def lifted_between(start: LRMOutput, end: LRMOutput | None, alphas: torch.Tensor) -> torch.Tensor | None:
        """The keyframes' plane lifts blended at k+α (B = len(alphas)), k's alone without an end: the fallback
        where the keyframes' views cannot be moved along optical flow (models/view_flow.py), as in the canonical
        chain, where k+1 is not known yet. None for models without a plane lift."""
        if start.lifted is None:
            return None
        if end is None or end.lifted is None:
            return start.lifted.expand(len(alphas), -1, -1, -1, -1)
        a = alphas.to(start.lifted.dtype).view(-1, 1, 1, 1, 1)
        return (1 - a) * start.lifted + a * end.lifted

    def forward(self, views: torch.Tensor, projections: torch.Tensor) -> LRMOutput:
        """views: (B, V, C_in, H, W), any number V of posed views; projections: (B, V, 3, 4) to their pixels."""
        images = self.tokenizer(views)
        x = self.triplane_tokens + self.lift(views[:, :, :3], projections)
        features = []
        first_feature = len(self.blocks) - self.config.feature_blocks
        for index, block in enumerate(self.blocks):
            x = block(x, images)
            if index >= first_feature:
                features.append(x)
        lifted = None if self.plane_lift is None else self.plane_lift(views[:, :, :3], projections)
        return LRMOutput(x, features, self.tokens_to_planes(x, lifted), lifted)
