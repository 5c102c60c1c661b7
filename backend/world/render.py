"""Render world objects from posed cameras: RGB, alpha, depth and canonical-coordinate maps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from backend.io.cameras import Camera
from backend.render.raster import Fragments, interpolate, rasterize
from backend.world.textures import ProceduralTexture

LIGHT = np.array([0.35, -0.45, 0.82]) / np.linalg.norm([0.35, -0.45, 0.82])


@dataclass
class ClipRender:
    """Arrays indexed [view, frame]; alpha, depth and canonical are exact (no antialiasing)."""

    rgb: np.ndarray  # (V, F, H, W, 3) float32 in [0, 1], straight (not premultiplied) colour
    alpha: np.ndarray  # (V, F, H, W) float32 coverage (antialiased when supersampled)
    mask: np.ndarray  # (V, F, H, W) bool, pixel centre covered
    depth: np.ndarray  # (V, F, H, W) float32 camera-space z, 0 where empty
    canonical: np.ndarray  # (V, F, H, W, 3) float32 position at t = 0, 0 where empty

    def composite(self, background: float = 1.0) -> np.ndarray:
        """RGB over a flat background, uint8 (V, F, H, W, 3), as written to video."""
        rgb = self.rgb * self.alpha[..., None] + background * (1 - self.alpha[..., None])
        return np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8)


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals (N, 3)."""
    tri = vertices[faces]
    face_normal = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=1)
    normals = torch.zeros_like(vertices).index_add_(0, faces.reshape(-1), face_normal.repeat_interleave(3, dim=0))
    return F.normalize(normals, dim=1, eps=1e-12)


def shade(
    fragments: Fragments,
    faces: torch.Tensor,
    face_parts: torch.Tensor,
    canonical: torch.Tensor,
    normals: torch.Tensor,
    texture: ProceduralTexture,
    view_dirs: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(RGB (H, W, 3), canonical map (H, W, 3)) for one view: texture looked up at canonical points.

    view_dirs: (H, W, 3) unit directions from the surface towards the camera, per pixel.
    """
    canonical_map = interpolate(canonical, faces, fragments)
    mask = fragments.mask
    rgb = torch.zeros_like(canonical_map)
    if not mask.any():
        return rgb, canonical_map
    part = face_parts[fragments.triangle[mask]]
    albedo = texture(canonical_map[mask], part)
    normal = F.normalize(interpolate(normals, faces, fragments)[mask], dim=1, eps=1e-12)
    # view direction, to light both sides of thin parts like the front
    view = view_dirs.to(normal.dtype)[mask]
    normal = torch.where((normal * view).sum(1, keepdim=True) < 0, -normal, normal)
    light = torch.as_tensor(LIGHT, dtype=normal.dtype, device=normal.device)
    diffuse = (normal @ light).clamp_min(0)
    facing = (normal * view).sum(1).clamp_min(0)
    rgb[mask] = albedo * (0.3 + 0.5 * diffuse + 0.25 * facing)[:, None]
    return rgb.clamp(0, 1), canonical_map


def render_clip(
    obj,
    cameras: list[Camera],
    times: np.ndarray,
    supersample: int = 1,
    device: str | torch.device = "cpu",
) -> ClipRender:
    """Render ``obj`` (a WorldObject, or any mesh sequence without texture) from every camera at every time.

    With ``supersample`` > 1 the RGB and alpha are rendered at that factor and box-filtered
    (antialiased); depth, mask and canonical maps are always exact at pixel centres.
    """
    faces = torch.as_tensor(obj.faces, device=device)
    face_parts = torch.as_tensor(obj.face_part_ids, device=device)
    canonical = torch.as_tensor(obj.canonical_vertices, device=device)
    v, f = len(cameras), len(times)
    h, w = cameras[0].height, cameras[0].width
    out = ClipRender(
        rgb=np.zeros((v, f, h, w, 3), np.float32),
        alpha=np.zeros((v, f, h, w), np.float32),
        mask=np.zeros((v, f, h, w), bool),
        depth=np.zeros((v, f, h, w), np.float32),
        canonical=np.zeros((v, f, h, w, 3), np.float32),
    )
    big_cameras = [c.resized(c.width * supersample, c.height * supersample) for c in cameras]
    # per-pixel view directions depend on the camera only: once per camera, not per frame
    view_dirs = [-torch.as_tensor(c.pixel_rays()[1], dtype=torch.float32, device=device) for c in cameras]
    big_view_dirs = ([-torch.as_tensor(c.pixel_rays()[1], dtype=torch.float32, device=device) for c in big_cameras]
                     if supersample > 1 else view_dirs)
    with torch.no_grad():
        for fi, t in enumerate(times):
            vertices = torch.as_tensor(obj.vertices_at(float(t)), device=device)
            normals = vertex_normals(vertices, faces)
            for vi, camera in enumerate(cameras):
                frag = rasterize(vertices, faces, camera)
                if obj.texture is None:  # geometry only: ground-truth maps of a mesh sequence
                    out.mask[vi, fi] = frag.mask.cpu().numpy()
                    out.depth[vi, fi] = frag.depth.cpu().numpy()
                    out.canonical[vi, fi] = interpolate(canonical, faces, frag).cpu().numpy()
                    continue
                rgb, canonical_map = shade(frag, faces, face_parts, canonical, normals, obj.texture, view_dirs[vi])
                alpha = frag.mask.float()
                if supersample > 1:
                    big = rasterize(vertices, faces, big_cameras[vi])
                    big_rgb, _ = shade(big, faces, face_parts, canonical, normals, obj.texture, big_view_dirs[vi])
                    big_alpha = big.mask.float()
                    pooled_alpha = F.avg_pool2d(big_alpha[None, None], supersample)[0, 0]
                    premult = F.avg_pool2d((big_rgb * big_alpha[..., None]).permute(2, 0, 1)[None], supersample)[0]
                    rgb = (premult.permute(1, 2, 0) / pooled_alpha.clamp_min(1e-6)[..., None]).clamp(0, 1)
                    alpha = pooled_alpha
                out.rgb[vi, fi] = rgb.cpu().numpy()
                out.alpha[vi, fi] = alpha.cpu().numpy()
                out.mask[vi, fi] = frag.mask.cpu().numpy()
                out.depth[vi, fi] = frag.depth.cpu().numpy()
                out.canonical[vi, fi] = canonical_map.cpu().numpy()
    return out
