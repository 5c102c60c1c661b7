"""Losses: rendering losses on sampled rays of target views, and LIM's L_T and L_causal."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from backend.models.config import ModelConfig
from backend.models.triplane import FieldSample
from backend.render.volume import render_rays

# Triplane-space losses (L_T, L_causal) come out ~50x smaller than the image losses at the start of
# LIM training; weighted up so that the paper's main objective is not drowned by rendering terms.
WEIGHTS = {"rgb": 1.0, "mask": 0.5, "depth": 0.5, "canonical": 1.0, "triplane": 10.0, "causal": 10.0}


def sample_pixels(alpha: torch.Tensor, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``count`` pixel indices per image (N, P): half on the object, half anywhere.

    Objects cover ~10 % of a view; uniform rays would spend most of the batch on empty background.
    """
    foreground = (alpha > 0).float()
    share = foreground / foreground.sum(dim=1, keepdim=True).clamp_min(1)
    weights = 0.5 * share + 0.5 / alpha.shape[1]
    return torch.multinomial(weights, count, replacement=True, generator=generator)


def rendering_losses(field: Callable[[torch.Tensor], FieldSample], targets: dict[str, torch.Tensor],
                     config: ModelConfig, rays_per_view: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """RGB, mask and depth (and canonical) losses on random rays of every target view.

    targets: rgb (B, V, H, W, 3), alpha/depth (B, V, H, W), canonical (B, V, H, W, 3),
    origins/dirs (B, V, H·W, 3), cosines (B, V, H·W).
    """
    b, v, h, w = targets["alpha"].shape
    pick = sample_pixels(targets["alpha"].reshape(b * v, h * w), rays_per_view, generator).view(b, v, rays_per_view)

    def take(name: str, channels: int | None) -> torch.Tensor:
        flat = targets[name].reshape(b, v, h * w, *(() if channels is None else (channels,)))
        index = pick if channels is None else pick[..., None].expand(-1, -1, -1, channels)
        return torch.gather(flat, 2, index).reshape(b, v * rays_per_view, *(() if channels is None else (channels,)))

    origins, dirs, cosines = take("origins", 3), take("dirs", 3), take("cosines", None)
    render = render_rays(field, origins, dirs, config.bound, config.coarse_samples, config.fine_samples)
    alpha, depth = take("alpha", None), take("depth", None)
    mask = (depth > 0).float()
    losses = {
        "rgb": F.mse_loss(render.rgb, take("rgb", 3)),
        "mask": F.mse_loss(render.alpha, alpha),
        # depth given a hit (normalised by alpha): supervising Σ w·t directly would reward opacity everywhere
        "depth": (((render.distance / render.alpha.clamp_min(1e-3)) * cosines - depth).abs() * mask).sum() / mask.sum().clamp_min(1),
    }
    if render.canonical is not None:
        error = (render.canonical - take("canonical", 3)).abs().sum(-1)
        losses["canonical"] = (error * mask).sum() / mask.sum().clamp_min(1)
    return losses


def weighted_total(losses: dict[str, torch.Tensor], overrides: dict[str, float] | None = None) -> torch.Tensor:
    weights = {**WEIGHTS, **(overrides or {})}
    return sum(weights.get(name, 1.0) * value for name, value in losses.items())


def causal_consistency(interpolate: Callable, start, target_views: torch.Tensor, alpha: torch.Tensor,
                       alpha_r: torch.Tensor, to_planes: Callable, direct_planes: torch.Tensor) -> torch.Tensor:
    """L_causal = ‖LIM(F̂(k+α_r), I_{k+1}, (α−α_r)/(1−α_r)) − T̂(k+α)‖².

    ``interpolate(start, views, alpha)`` -> state at k+alpha (LIM's tokens and own features);
    the second hop starts from the first hop's state, so it reads LIM's own features. Both hops
    end at keyframe k+1: (α−α_r)/(1−α_r) is where k+α lies between k+α_r and k+1.
    ``direct_planes`` is T̂(k+α) from the direct hop, held fixed as the target.
    """
    first = interpolate(start, target_views, alpha_r)
    relative = (alpha - alpha_r) / (1 - alpha_r).clamp_min(1e-6)
    second = interpolate(first, target_views, relative)
    return F.mse_loss(to_planes(second), direct_planes.detach())
