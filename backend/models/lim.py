"""LIM: the triplane at any time k+α between keyframes k and k+1.

    T̂(k+α) = LIM(F_k, I_{k+1}, α)

Each block adds the α encoding, cross-attends to the features F_k (the last L blocks of the LRM
at k, or of LIM itself on a second hop), cross-attends to the image tokens of keyframe k+1, then
self-attention and MLP. LIM outputs tokens in the LRM's token space; the frozen LRM turns them
into planes.

One departure from the paper, for models trained on little compute: when the LRM tokens of
keyframe k+1 are given (they are: every keyframe goes through the LRM), the query tokens start
from their linear blend with those of k, and the blocks add a residual through a gate that
starts closed. At initialisation LIM *is* linear triplane interpolation; training only has to
learn what improves on it. (A first CPU run without this stayed at "copy keyframe k" quality.)
Without end tokens (the canonical chain, where k+1's are not known yet) it starts from k's.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from backend.models.blocks import CrossAttention, SelfAttentionMLP, sinusoidal
from backend.models.config import ModelConfig
from backend.models.lrm import LRM, ImageTokenizer

GATE_SCALE = 20.0


@dataclass
class LIMOutput:
    tokens: torch.Tensor  # (B, T, D)
    features: list[torch.Tensor]  # last L blocks' outputs: LIM's own F̂(k+α)


class LIMBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.alpha = nn.Linear(dim, dim)
        self.cross_features = CrossAttention(dim, heads)
        self.cross_images = CrossAttention(dim, heads)
        self.body = SelfAttentionMLP(dim, heads, mlp_ratio)
        nn.init.zeros_(self.alpha.weight)
        nn.init.zeros_(self.alpha.bias)

    def forward(self, x: torch.Tensor, features: torch.Tensor, images: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        x = x + self.alpha(alpha)[:, None]
        x = self.cross_features(x, features)
        x = self.cross_images(x, images)
        return self.body(x)


class LIM(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = ImageTokenizer(config)
        self.alpha_embed = nn.Sequential(nn.Linear(config.dim, config.dim), nn.SiLU(), nn.Linear(config.dim, config.dim))
        self.blocks = nn.ModuleList(LIMBlock(config.dim, config.heads, config.mlp_ratio) for _ in range(config.lim_blocks))
        self.gate = nn.Parameter(torch.zeros(config.dim))  # residual over the starting tokens, closed at first

    @staticmethod
    def from_lrm(lrm: LRM) -> LIM:
        """Initialise from the LRM as in the paper: tokenizer and the LRM's last blocks."""
        lim = LIM(lrm.config)
        lim.tokenizer.load_state_dict(lrm.tokenizer.state_dict())
        offset = len(lrm.blocks) - len(lim.blocks)  # LIM's blocks copy the LRM's last ones
        for index, block in enumerate(lim.blocks):
            source = lrm.blocks[(offset + index) % len(lrm.blocks)]
            block.cross_images.load_state_dict(source.cross.state_dict())
            block.cross_features.load_state_dict(copy.deepcopy(source.cross.state_dict()))
            block.body.load_state_dict(source.body.state_dict())
        return lim

    def forward(self, start_tokens: torch.Tensor, features: list[torch.Tensor], next_views: torch.Tensor,
                alpha: torch.Tensor, end_tokens: torch.Tensor | None = None) -> LIMOutput:
        """start_tokens (B, T, D) at k; features: L tensors (B, T, D); next_views (B, V, C, H, W); alpha (B,);
        end_tokens (B, T, D): the LRM's tokens at k+1, when known."""
        images = self.tokenizer(next_views)
        context = torch.cat(features, dim=1)
        a = self.alpha_embed(sinusoidal(alpha, self.config.dim))
        weight = alpha.to(start_tokens.dtype)[:, None, None]
        origin = start_tokens if end_tokens is None else (1 - weight) * start_tokens + weight * end_tokens
        x = origin
        outputs = []
        first_feature = len(self.blocks) - self.config.feature_blocks
        for index, block in enumerate(self.blocks):
            x = block(x, context, images, a)
            if index >= first_feature:
                outputs.append(x)
        # LIM's features must match F_k's count so a second hop can read them
        while len(outputs) < len(features):
            outputs.insert(0, outputs[0])
        # scaled so that Adam (steps of ~lr per parameter) can open the gate within tens of steps
        return LIMOutput(origin + GATE_SCALE * self.gate * (x - origin), outputs)
