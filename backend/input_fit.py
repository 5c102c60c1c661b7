"""Fit each frame's triplane to the footage: a multi-view clip to all its views; a monocular clip to its one
view, anchored to the model's own side views (below, the monocular case, where the anchors matter).

The LRM reads the input view next to generated views it cannot tell apart from it, so it hedges: seen
from the input camera the result is hazier and looser than the matte. Per keyframe, an additive
correction to the planes is fitted by Adam to

- the footage (RGB over white, and the matte as alpha) from the input camera, and
- the uncorrected result's own renders (RGB and alpha) from the generated views' cameras.

The anchors matter: a triplane fitted to one view alone extrudes the correction along that view's
rays and ruins the sides (measured: -2 dB novel-view PSNR_FG); anchored, the sides keep the model's
best guess and the input view takes the footage's outline. In-betweens start from the keyframes'
corrections blended by their position (LIM's tokens and its flow-moved lift carry the motion), and where
the footage has that frame they take a few steps on it too.

A multi-view clip needs no anchors: every view is footage, and together they hold the sides (world seeds
1000000-3: views nobody filmed 16.9 -> 18.2 dB PSNR_FG; fitting keyframes alone, with blended in-betweens,
gained nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from backend.io.cameras import Camera
from backend.pipeline import Reconstruction, segment_of
from backend.render.volume import camera_rays, render_rays, render_triplane


@dataclass(frozen=True)
class FitSettings:
    steps: int = 30
    rays: int = 512  # random rays per view and step (1024: the same figures at twice the time)
    # 0.2 fits the footage closer (world seeds: input-view IoU 0.80 -> 0.86, DAVIS +0.1) but moves the
    # sides with it (novel-view PSNR_FG -0.9 dB), so the anchors lose: kept at 0.02
    lr: float = 0.02
    anchor_weight: float = 1.0  # the generated views' cameras against the input camera's 1
    seed: int = 0
    # in-between frames start from the blend of their keyframes' corrections and take this share of the
    # steps on their own footage frame, against anchors rendered at a quarter of the resolution with a quarter
    # of the rays (full anchors cost a 32-frame job 73 s). World seeds 1000000-3, 30 steps: input-view IoU
    # 0.795 -> 0.830, input PSNR 17.8 -> 18.7, novel-view PSNR_FG 15.34 -> 15.45 (full anchors: 0.818, 18.3,
    # 15.50; no anchors: 0.864, 20.3, 14.92, the sides pay)
    between_share: float = 1 / 3
    between_anchored: bool = True
    anchor_rays: int | None = None  # random rays per anchor view and step (None: ``rays``)
    between_anchor_scale: float = 0.25
    # the correction as a sum of planes at 1/s of the triplane's resolution for each s (1: full); Adam moves
    # every texel a ray touches by about lr a step, so a full-resolution correction alone comes out grainy
    scales: tuple[int, ...] = (1,)
    # the share of each footage view's rays drawn where the unfitted render disagrees most with the footage
    # (|alpha - matte| + mean |rgb - footage|, from one render at the start); the rest are drawn uniformly.
    # Monocular, world seeds 1000000-3: input-view IoU 0.882 -> 0.942 at 0.5 (0.935 at 0.25), novel-view
    # PSNR_FG 15.40 -> 15.13 (15.22); DAVIS dance-twirl, horsejump-low, camel: IoU 0.736 -> 0.853 (0.825 at 0.25).
    # Aiming at the alpha error alone, or only at haze (alpha above the matte), cost the sides more.
    error_share: float = 0.0

    @property
    def between_steps(self) -> int:
        return round(self.steps * self.between_share)


def fit_planes(lrm, planes: torch.Tensor, cameras: list[Camera], rgb: np.ndarray, matte: np.ndarray,
               anchors: list[Camera], settings: FitSettings, start: torch.Tensor | None = None) -> torch.Tensor:
    """The correction (1, 3, C, R, R) that fits ``planes`` to ``rgb`` (V, H, W, 3) in [0, 1] over white and
    ``matte`` (V, H, W) in [0, 1] seen by ``cameras`` (the footage views), keeping the renders from
    ``anchors`` as they were (the anchors may have a resolution of their own: a coarser one costs less to
    render). ``start``: the correction to begin from (zero by default)."""
    config = lrm.config
    device = next(lrm.parameters()).device
    planes = planes.to(device)
    # ray groups: the footage, then the anchors; each (origins, dirs (V, P, 3), rgb (V, P, 3), alpha (V, P), rays a step)
    origins, dirs, _ = camera_rays(cameras, device)
    groups = [(origins, dirs, torch.as_tensor(rgb, dtype=torch.float32, device=device).reshape(len(cameras), -1, 3),
               torch.as_tensor(matte, dtype=torch.float32, device=device).reshape(len(cameras), -1), settings.rays, 1.0)]
    base = planes if start is None else planes + start.to(device)
    error = _disagreement(lrm, base, cameras, groups[0][2], groups[0][3]) if settings.error_share > 0 else None
    if anchors:
        with torch.no_grad():
            kept = {k: v.to(device) for k, v in render_triplane(lrm, planes, anchors).items()}
        origins, dirs, _ = camera_rays(anchors, device)
        groups.append((origins, dirs, kept["rgb"].reshape(len(anchors), -1, 3), kept["alpha"].reshape(len(anchors), -1),
                       settings.anchor_rays or settings.rays, settings.anchor_weight))
    resolution = planes.shape[-1]
    parts = [torch.zeros(*planes.shape[:-2], resolution // s, resolution // s, device=device, requires_grad=True)
             for s in settings.scales]
    optimiser = torch.optim.Adam(parts, lr=settings.lr)
    generator = torch.Generator().manual_seed(settings.seed)
    frozen = [p.requires_grad for p in lrm.parameters()]
    for p in lrm.parameters():
        p.requires_grad_(False)
    try:
        with torch.enable_grad():  # callers may run under no_grad
            for _ in range(settings.steps):
                picked = []
                for index, (group_origins, group_dirs, group_rgb, group_alpha, rays, _) in enumerate(groups):
                    views = len(group_origins)
                    picks = torch.randint(0, group_origins.shape[1], (views, rays), generator=generator)
                    if index == 0 and error is not None:
                        aimed = round(rays * settings.error_share)
                        picks[:, :aimed] = torch.multinomial(error, aimed, replacement=True, generator=generator)
                    picks = picks.to(device)
                    rows = torch.arange(views, device=device)[:, None]
                    picked.append((group_origins[rows, picks].reshape(-1, 3), group_dirs[rows, picks].reshape(-1, 3),
                                   group_rgb[rows, picks], group_alpha[rows, picks]))
                fitted = base + _summed(parts, resolution)  # once a step: the renderer queries the field twice
                field = lambda points, fitted=fitted: lrm.decoder(fitted, points)  # noqa: E731
                with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=generator)))  # the ray jitter's draws
                    out = render_rays(field, torch.cat([p[0] for p in picked])[None], torch.cat([p[1] for p in picked])[None],
                                      config.bound, config.coarse_samples // 2, config.fine_samples // 2)
                loss, offset = 0.0, 0
                for (_, _, target_rgb, target_alpha), group in zip(picked, groups, strict=True):
                    views, rays, weight = len(target_rgb), target_rgb.shape[1], group[5]
                    rgb_out = out.rgb[0, offset:offset + views * rays].view(views, rays, 3)
                    alpha_out = out.alpha[0, offset:offset + views * rays].view(views, rays)
                    offset += views * rays
                    loss = loss + weight * ((rgb_out - target_rgb).pow(2).mean(dim=(1, 2))
                                            + (alpha_out - target_alpha).pow(2).mean(dim=1)).sum()
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
    finally:
        for p, flag in zip(lrm.parameters(), frozen, strict=True):
            p.requires_grad_(flag)
    correction = _summed(parts, resolution).detach()
    return (correction if start is None else start.to(device) + correction).cpu()


def _disagreement(lrm, planes: torch.Tensor, cameras: list[Camera], rgb: torch.Tensor, matte: torch.Tensor) -> torch.Tensor:
    """(V, H*W) on the CPU: how far each footage pixel is from the render of ``planes``, plus a floor so that
    every pixel can be drawn. Rendered with half the samples (0.27 s against 0.6 s at 64²): it only weights
    where rays are drawn."""
    with torch.no_grad():
        out = render_triplane(lrm, planes, cameras, sample_divisor=2)
    alpha = out["alpha"].reshape(len(cameras), -1).cpu()
    colour = out["rgb"].reshape(len(cameras), -1, 3).cpu()
    error = (alpha - matte.cpu()).abs() + (colour - rgb.cpu()).abs().mean(dim=-1)
    return error + 0.01


def _summed(parts: list[torch.Tensor], resolution: int) -> torch.Tensor:
    """The pyramid's levels upsampled to ``resolution`` and added."""
    total = 0
    for part in parts:
        if part.shape[-1] != resolution:
            flat = part.reshape(-1, *part.shape[-3:])
            flat = torch.nn.functional.interpolate(flat, size=(resolution, resolution), mode="bilinear", align_corners=False)
            part = flat.reshape(*part.shape[:-2], resolution, resolution)
        total = total + part
    return total


def fit_to_footage(lrm, geometry: Reconstruction, positions: np.ndarray, cameras: list[Camera], frames: np.ndarray,
                   mattes: np.ndarray, anchors: list[Camera], settings: FitSettings) -> Reconstruction:
    """``geometry`` with every keyframe fitted to its footage frames; in-betweens start from the blend of
    their keyframes' corrections and, at whole frames, take ``settings.between_steps`` on their own frames.

    frames (V, F, H, W, 3) uint8 over white and mattes (V, F, H, W) in [0, 1]: the footage views at every clip
    frame, seen by ``cameras``; the cameras are resized to the LRM's input size and the images with them.
    """
    if settings.steps <= 0:
        return geometry
    size = lrm.config.image_size
    cameras = [c.resized(size, size) for c in cameras]
    anchors = [c.resized(size, size) for c in anchors]
    side = max(8, round(size * settings.between_anchor_scale))
    between_anchors = [c.resized(side, side) for c in anchors]
    between_rays = max(16, round((settings.anchor_rays or settings.rays) * settings.between_anchor_scale))

    def footage(f: int) -> tuple[np.ndarray, np.ndarray]:
        return (np.stack([_downsized(view[f], size) for view in frames]),
                np.stack([_downsized(view[f], size) for view in mattes]))

    keys = geometry.keyframes
    index_of = {float(p): i for i, p in enumerate(positions)}
    corrections = {}
    for k in keys:
        planes = geometry.planes[index_of[float(k)]] if float(k) in index_of else None
        if planes is None:
            raise ValueError(f"keyframe {k} is not among the output positions")
        corrections[k] = fit_planes(lrm, planes, cameras, *footage(k), anchors, settings)
    fitted = []
    for position, planes in zip(positions, geometry.planes, strict=True):
        if float(position).is_integer() and int(position) in corrections:
            fitted.append(planes + corrections[int(position)])
            continue
        k, nxt = segment_of(float(position), keys)
        a = (float(position) - k) / (nxt - k)
        blended = (1 - a) * corrections[k] + a * corrections[nxt]
        if settings.between_steps > 0 and float(position).is_integer():  # its own footage frame exists
            blended = fit_planes(lrm, planes, cameras, *footage(int(position)),
                                 between_anchors if settings.between_anchored else [],
                                 replace(settings, steps=settings.between_steps, anchor_rays=between_rays), start=blended)
        fitted.append(planes + blended)
    return Reconstruction(fitted, keys, geometry.times)


def _downsized(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 RGB (H, W, 3) or a float matte (H, W) -> float32 in [0, 1] at size² (area averaging)."""
    values = torch.as_tensor(np.asarray(image), dtype=torch.float32)
    if values.ndim == 2:
        values = values[..., None]
    elif image.dtype == np.uint8:
        values = values / 255
    values = values.permute(2, 0, 1)[None]
    if values.shape[-1] != size or values.shape[-2] != size:
        values = torch.nn.functional.interpolate(values, size=(size, size), mode="area")
    out = values[0].permute(1, 2, 0).numpy()
    return out[..., 0] if out.shape[-1] == 1 else out
