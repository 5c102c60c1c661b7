"""Volume rendering of a field in the box [-bound, bound]³, plain torch (CPU or CUDA).

Stratified coarse samples locate the surface; importance samples drawn from the coarse
weights refine it (one shared field, as in Mip-NeRF). Returns RGB over a white background,
alpha, depth (camera-space z when the camera's forward axis is given) and canonical maps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from backend.io.cameras import Camera
from backend.models.triplane import FieldSample

Field = Callable[[torch.Tensor], FieldSample]  # points (B, P, 3) -> FieldSample


@dataclass
class RayRender:
    rgb: torch.Tensor  # (B, R, 3) over a white background
    alpha: torch.Tensor  # (B, R)
    distance: torch.Tensor  # (B, R) expected distance along the ray (0 where empty)
    canonical: torch.Tensor | None  # (B, R, 3) expected canonical coordinate, divided by alpha


def box_intersection(origins: torch.Tensor, dirs: torch.Tensor, bound: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Entry and exit distances (B, R) of rays with the box; equal where the ray misses."""
    safe = torch.where(dirs.abs() < 1e-9, torch.full_like(dirs, 1e-9), dirs)
    t0 = (-bound - origins) / safe
    t1 = (bound - origins) / safe
    near = torch.minimum(t0, t1).amax(dim=-1).clamp_min(0)
    far = torch.maximum(t0, t1).amin(dim=-1)
    far = torch.maximum(far, near)
    return near, far


def _composite(t: torch.Tensor, far: torch.Tensor, sample: FieldSample) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights (B, R, S) of sorted samples t (B, R, S) and their accumulated alpha (B, R)."""
    delta = torch.cat([t[..., 1:] - t[..., :-1], (far[..., None] - t[..., -1:]).clamp_min(0)], dim=-1)
    density = sample.density.view(t.shape)
    alpha = 1 - torch.exp(-density * delta)
    transmittance = torch.cumprod(torch.cat([torch.ones_like(alpha[..., :1]), 1 - alpha + 1e-10], dim=-1), dim=-1)[..., :-1]
    weights = alpha * transmittance
    return weights, weights.sum(dim=-1)


def _importance(t: torch.Tensor, weights: torch.Tensor, count: int, deterministic: bool) -> torch.Tensor:
    """Draw ``count`` distances per ray from the piecewise-constant pdf of the coarse weights."""
    mids = 0.5 * (t[..., 1:] + t[..., :-1])
    # max-blur the weights over neighbours (as mip-NeRF): a hard surface between two coarse samples
    # must draw fine samples on both sides of the midpoint, not only behind it
    padded = torch.nn.functional.pad(weights, (1, 1))
    blurred = torch.maximum(torch.maximum(padded[..., :-2], padded[..., 1:-1]), padded[..., 2:])
    pdf = blurred[..., 1:-1] + 1e-5  # bin j spans mids j..j+1, centred on sample j+1
    pdf = pdf / pdf.sum(dim=-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[..., :1]), torch.cumsum(pdf, dim=-1)], dim=-1)
    shape = (*cdf.shape[:-1], count)
    u = torch.linspace(0, 1, count, device=t.device).expand(shape) if deterministic else torch.rand(shape, device=t.device)
    index = torch.searchsorted(cdf.contiguous(), u.contiguous(), right=True).clamp(1, cdf.shape[-1] - 1)
    low, high = torch.gather(cdf, -1, index - 1), torch.gather(cdf, -1, index)
    bin_low, bin_high = torch.gather(mids, -1, index - 1), torch.gather(mids, -1, index)
    fraction = (u - low) / (high - low).clamp_min(1e-8)
    return bin_low + fraction * (bin_high - bin_low)


def _points(origins: torch.Tensor, dirs: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The points (B, R·S, 3) at distances t (B, R, S) along rays (B, R, 3)."""
    return (origins[..., None, :] + dirs[..., None, :] * t[..., None]).view(t.shape[0], -1, 3)


def _merged(t: torch.Tensor, sample: FieldSample, extra: torch.Tensor, extra_sample: FieldSample) -> tuple[torch.Tensor, FieldSample]:
    """Two sets of samples along the same rays (B, R, S) and (B, R, S'), as one sorted by distance."""
    merged, order = torch.sort(torch.cat([t, extra], dim=-1), dim=-1)

    def along(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
        if a is None or b is None:
            return None
        both = torch.cat([a.view(*t.shape, -1), b.view(*extra.shape, -1)], dim=-2)
        picked = torch.gather(both, -2, order[..., None].expand(*order.shape, both.shape[-1]))
        return picked.view(merged.shape[0], -1, *a.shape[2:])

    return merged, FieldSample(along(sample.density, extra_sample.density), along(sample.rgb, extra_sample.rgb),
                               along(sample.canonical, extra_sample.canonical))


def render_rays(field: Field, origins: torch.Tensor, dirs: torch.Tensor, bound: float, coarse: int, fine: int,
                deterministic: bool = False) -> RayRender:
    """Render rays (B, R, 3) through ``field``; gradients flow through the final samples only."""
    near, far = box_intersection(origins, dirs, bound)
    steps = torch.arange(coarse, device=origins.device, dtype=origins.dtype)
    shape = (*near.shape, coarse)
    jitter = torch.full(shape, 0.5, device=origins.device) if deterministic else torch.rand(shape, device=origins.device)
    t = near[..., None] + (far - near)[..., None] * (steps + jitter) / coarse
    b, r = near.shape
    with torch.no_grad():
        coarse_sample = field(_points(origins, dirs, t))
        weights, _ = _composite(t, far, coarse_sample)
        extra = _importance(t, weights, fine, deterministic)
    if torch.is_grad_enabled():  # gradients must reach the coarse samples too: query the field at all of them
        t = torch.sort(torch.cat([t, extra], dim=-1), dim=-1).values
        sample = field(_points(origins, dirs, t))
    else:  # the coarse samples are known: query only the new ones (a third less work a ray)
        extra_sample = field(_points(origins, dirs, extra))
        t, sample = _merged(t, coarse_sample, extra, extra_sample)
    weights, acc = _composite(t, far, sample)
    rgb = (weights[..., None] * sample.rgb.view(b, r, -1, 3)).sum(dim=-2) + (1 - acc[..., None])
    distance = (weights * t).sum(dim=-1)
    canonical = None
    if sample.canonical is not None:
        canonical = (weights[..., None] * sample.canonical.view(b, r, -1, 3)).sum(dim=-2) / acc[..., None].clamp_min(1e-4)
    return RayRender(rgb, acc, distance, canonical)


def camera_rays(cameras: list[Camera], device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Origins, unit directions (V, H·W, 3) and each ray's cos to the optical axis (V, H·W)."""
    origins, dirs, cosines = [], [], []
    for camera in cameras:
        origin, d = camera.pixel_rays()
        d = d.reshape(-1, 3)
        origins.append(np.broadcast_to(origin, d.shape))
        dirs.append(d)
        cosines.append(d @ camera.rotation[2])
    as_tensor = lambda a: torch.as_tensor(np.stack(a), dtype=torch.float32, device=device)  # noqa: E731
    return as_tensor(origins), as_tensor(dirs), as_tensor(cosines)


@torch.no_grad()
def render_views(field: Field, cameras: list[Camera], bound: float, coarse: int, fine: int,
                 chunk: int = 8192) -> dict[str, torch.Tensor]:
    """Full images from one field: rgb (V, H, W, 3), alpha, depth (camera z) (V, H, W), canonical."""
    origins, dirs, cosines = camera_rays(cameras)
    parts: list[RayRender] = []
    flat_o, flat_d = origins.reshape(1, -1, 3), dirs.reshape(1, -1, 3)
    for start in range(0, flat_o.shape[1], chunk):
        parts.append(render_rays(field, flat_o[:, start:start + chunk], flat_d[:, start:start + chunk], bound,
                                 coarse, fine, deterministic=True))
    v, h, w = len(cameras), cameras[0].height, cameras[0].width
    out = {
        "rgb": torch.cat([p.rgb for p in parts], dim=1).view(v, h, w, 3),
        "alpha": torch.cat([p.alpha for p in parts], dim=1).view(v, h, w),
        "depth": (torch.cat([p.distance for p in parts], dim=1).view(v, -1) * cosines).view(v, h, w),
    }
    if parts[0].canonical is not None:
        out["canonical"] = torch.cat([p.canonical for p in parts], dim=1).view(v, h, w, 3)
    return out


def render_triplane(model, planes: torch.Tensor, cameras: list[Camera], sample_divisor: int = 1) -> dict[str, torch.Tensor]:
    """``render_views`` of one triplane (1, 3, C, R, R) through ``model``'s decoder, bound and sample counts
    (divided by ``sample_divisor``: a cheaper, coarser render)."""
    config = model.config
    return render_views(lambda points: model.decoder(planes, points), cameras, config.bound,
                        max(config.coarse_samples // sample_divisor, 1), max(config.fine_samples // sample_divisor, 1))
