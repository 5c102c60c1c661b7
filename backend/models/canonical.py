"""Canonical surface coordinates, propagated keyframe by keyframe (the paper's LRM‾ / LIM‾).

The canonical field at time t maps each surface point to where it sits at the clip's first
frame. It is not guessed per keyframe, it is carried along:
  keyframe 0   identity: the canonical maps are the world XYZ of the surface (plain LRM geometry);
  segment k    LRM‾ reads RGB ⊕ Plücker ⊕ the canonical maps at k; LIM‾ interpolates its
               canonical triplane to any k+α from the RGB views at k+1 (canonical channels zero);
  next k+1     the canonical maps rendered at α = 1 from the input cameras feed LRM‾ at k+1.
Errors accumulate along the chain; `bench` measures that drift against ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from backend.io.cameras import Camera
from backend.models.lim import LIM
from backend.models.lrm import LRM, camera_projections
from backend.render.volume import render_triplane

SURFACE_ALPHA = 0.5


def xyz_maps(lrm: LRM, planes: torch.Tensor, cameras: list[Camera]) -> torch.Tensor:
    """World positions of the rendered surface (V, 3, H, W); zero where the views see nothing."""
    out = render_triplane(lrm, planes, cameras)
    maps = []
    for camera, depth, alpha in zip(cameras, out["depth"], out["alpha"], strict=True):
        origin, dirs = camera.pixel_rays()
        dirs = torch.as_tensor(dirs, dtype=torch.float32)
        cos = dirs @ torch.as_tensor(camera.rotation[2], dtype=torch.float32)
        distance = depth / alpha.clamp_min(1e-3) / cos
        points = torch.as_tensor(origin, dtype=torch.float32) + dirs * distance[..., None]
        maps.append(points * (alpha > SURFACE_ALPHA)[..., None])
    return torch.stack(maps).permute(0, 3, 1, 2)


def canonical_maps(lrm_c: LRM, planes: torch.Tensor, cameras: list[Camera]) -> torch.Tensor:
    """Canonical coordinates of the rendered surface (V, 3, H, W); zero where the views see nothing."""
    out = render_triplane(lrm_c, planes, cameras)
    return (out["canonical"] * (out["alpha"] > SURFACE_ALPHA)[..., None]).permute(0, 3, 1, 2)


@dataclass
class Segment:
    planes: list[torch.Tensor]  # canonical triplanes (1, 3, C, R, R) at each requested α
    next_maps: torch.Tensor  # canonical maps (V, 3, H, W) at keyframe k+1, for the next segment


class CanonicalChain:
    """Runs the propagation: `start` once, then `segment` for each pair of keyframes in order."""

    def __init__(self, lrm: LRM, lrm_c: LRM, lim_c: LIM) -> None:
        if not lrm_c.config.canonical:
            raise ValueError("the canonical LRM must be built with canonical=True")
        self.lrm, self.lrm_c, self.lim_c = lrm, lrm_c, lim_c

    @torch.no_grad()
    def start(self, views: torch.Tensor, cameras: list[Camera]) -> torch.Tensor:
        """Canonical maps at the first keyframe: the identity, i.e. the surface's own XYZ."""
        projections = camera_projections(cameras, self.lrm.config.image_size)[None]
        return xyz_maps(self.lrm, self.lrm(views[None], projections).planes, cameras)

    @torch.no_grad()
    def segment(self, maps: torch.Tensor, views_k: torch.Tensor, views_next: torch.Tensor, alphas: list[float],
                cameras: list[Camera]) -> Segment:
        """views_*: (V, 9, H, W) RGB ⊕ Plücker of keyframes k and k+1; maps: canonical maps at k."""
        projections = camera_projections(cameras, self.lrm_c.config.image_size)[None]
        out = self.lrm_c(torch.cat([views_k, maps], dim=1)[None], projections)
        following = torch.cat([views_next, torch.zeros_like(maps)], dim=1)[None]
        requested = list(alphas) + ([1.0] if 1.0 not in alphas else [])
        planes = {}
        for alpha in requested:
            hop = self.lim_c(out.tokens, out.features, following, torch.tensor([alpha]))
            planes[alpha] = self.lrm_c.tokens_to_planes(hop.tokens, self.lrm_c.lifted_between(out, None, torch.tensor([alpha])))
        next_maps = canonical_maps(self.lrm_c, planes[1.0], cameras)
        return Segment([planes[a] for a in alphas], next_maps)
