"""Transformer pieces shared by LRM and LIM: pre-LN attention and MLP, α embedding."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Multi-head attention of queries x (B, N, D) over context (B, M, D) (x itself when None)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        b, n, d = x.shape
        q = self.q(x).view(b, n, self.heads, d // self.heads).transpose(1, 2)
        k, v = self.kv(context).view(b, context.shape[1], 2, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.out(y.transpose(1, 2).reshape(b, n, d))


class MLP(nn.Sequential):
    def __init__(self, dim: int, ratio: int) -> None:
        super().__init__(nn.Linear(dim, dim * ratio), nn.GELU(), nn.Linear(dim * ratio, dim))


class CrossAttention(nn.Module):
    """Pre-LN cross-attention: x + attn(LN(x), LN(context))."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return x + self.attn(self.norm(x), self.norm_context(context))


class SelfAttentionMLP(nn.Module):
    """Pre-LN self-attention then MLP, each residual."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm_self = nn.LayerNorm(dim)
        self.self_attn = Attention(dim, heads)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = MLP(dim, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.norm_self(x))
        return x + self.mlp(self.norm_mlp(x))


class LRMBlock(nn.Module):
    """Cross-attention to image tokens, self-attention, MLP (the LRM paper's block)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.cross = CrossAttention(dim, heads)
        self.body = SelfAttentionMLP(dim, heads, mlp_ratio)

    def forward(self, x: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        return self.body(self.cross(x, images))


def sinusoidal(values: torch.Tensor, dim: int, max_period: float = 100.0) -> torch.Tensor:
    """Sinusoidal features (B, dim) of scalars (B,) in about [0, 1]."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=values.device) / half) * max_period
    angles = values.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, V, C, H, W) -> (B, V * (H/p) * (W/p), C * p * p) patch vectors, view-major."""
    b, v, c, h, w = images.shape
    x = images.reshape(b, v, c, h // patch, patch, w // patch, patch)
    x = x.permute(0, 1, 3, 5, 2, 4, 6)
    return x.reshape(b, v * (h // patch) * (w // patch), c * patch * patch)
