"""Triangle rasterisation in plain torch (CPU or CUDA): which triangle each pixel sees, and where.

The rasteriser only answers visibility: per pixel the front-most triangle id and its
perspective-correct barycentric coordinates. Attributes (colour, canonical coordinates,
normals, ...) are interpolated afterwards with :func:`interpolate`, as in nvdiffrast.

Vectorised as (triangle, pixel) candidate pairs inside each triangle's screen bounding box,
resolved with a scatter-min z-buffer; good for meshes whose triangles cover few pixels each,
which is every mesh the world and the reconstruction make at the resolutions we train at.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from backend.io.cameras import Camera

NEAR = 1e-3


@dataclass
class Fragments:
    """Per-pixel visibility of one rendered view."""

    triangle: torch.Tensor  # (H, W) int64, -1 where no triangle is seen
    barycentric: torch.Tensor  # (H, W, 3) perspective-correct weights of the triangle's vertices
    depth: torch.Tensor  # (H, W) camera-space z, 0 where empty

    @property
    def mask(self) -> torch.Tensor:
        return self.triangle >= 0


def camera_tensors(camera: Camera, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(K, world_to_camera) as float32 tensors on ``device``."""
    K = torch.as_tensor(camera.K, dtype=torch.float32, device=device)
    w2c = torch.as_tensor(camera.world_to_camera, dtype=torch.float32, device=device)
    return K, w2c


def _edge(ax: torch.Tensor, ay: torch.Tensor, bx: torch.Tensor, by: torch.Tensor, px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    return (bx - ax) * (py - ay) - (by - ay) * (px - ax)


def rasterize(vertices: torch.Tensor, faces: torch.Tensor, camera: Camera) -> Fragments:
    """Rasterise a triangle mesh seen by ``camera``.

    vertices: (N, 3) float world positions; faces: (M, 3) int64 vertex indices.
    Triangles with a vertex behind the near plane are skipped (the world keeps them in front).
    """
    K, w2c = camera_tensors(camera, vertices.device)
    cam = vertices.float() @ w2c[:3, :3].T + w2c[:3, 3]
    z = cam[:, 2]
    uv = cam[:, :2] / z.clamp_min(NEAR)[:, None] * K[[0, 1], [0, 1]] + K[:2, 2]
    return rasterize_screen(uv, z, faces, camera.width, camera.height)


def rasterize_screen(uv: torch.Tensor, z: torch.Tensor, faces: torch.Tensor, width: int, height: int) -> Fragments:
    """Rasterise triangles given in pixel coordinates (N, 2) with positive depths (N,).

    With constant depth this is plain 2D rasterisation (e.g. of a UV atlas for texture baking).
    """
    device = uv.device
    tri_uv = uv[faces]  # (M, 3, 2)
    tri_z = z[faces]  # (M, 3)
    lo = tri_uv.amin(dim=1)
    hi = tri_uv.amax(dim=1)
    # pixel i is covered when its centre i + 0.5 lies inside [lo, hi]
    x0 = torch.ceil(lo[:, 0] - 0.5).clamp(0, width).long()
    x1 = torch.floor(hi[:, 0] - 0.5).clamp(-1, width - 1).long()
    y0 = torch.ceil(lo[:, 1] - 0.5).clamp(0, height).long()
    y1 = torch.floor(hi[:, 1] - 0.5).clamp(-1, height - 1).long()
    nx = (x1 - x0 + 1).clamp_min(0)
    ny = (y1 - y0 + 1).clamp_min(0)
    count = nx * ny
    count = torch.where(tri_z.amin(dim=1) > NEAR, count, torch.zeros_like(count))
    tri = torch.repeat_interleave(torch.arange(len(faces), device=device), count)
    empty = Fragments(
        torch.full((height, width), -1, dtype=torch.long, device=device),
        torch.zeros((height, width, 3), device=device),
        torch.zeros((height, width), device=device),
    )
    if tri.numel() == 0:
        return empty
    start = torch.cumsum(count, 0) - count
    offset = torch.arange(tri.numel(), device=device) - start[tri]
    px = x0[tri] + offset % nx[tri]
    py = y0[tri] + torch.div(offset, nx[tri], rounding_mode="floor")

    weights = _screen_barycentric(tri_uv[tri], px.float() + 0.5, py.float() + 0.5)
    inside = (weights >= 0).all(dim=1)
    tri, px, py, weights = tri[inside], px[inside], py[inside], weights[inside]
    inv_z = (weights / tri_z[tri]).sum(dim=1)
    depth = 1.0 / inv_z

    pixel = py * width + px
    zbuf = torch.full((height * width,), float("inf"), device=device)
    zbuf.scatter_reduce_(0, pixel, depth, reduce="amin")
    front = depth <= zbuf[pixel]
    # ties (shared edges at equal depth) go to the highest triangle id, deterministically
    winner = torch.full((height * width,), -1, dtype=torch.long, device=device)
    winner.scatter_reduce_(0, pixel[front], tri[front], reduce="amax")

    covered = torch.nonzero(winner >= 0).squeeze(1)
    tri_c = winner[covered]
    cx = (covered % width).float() + 0.5
    cy = torch.div(covered, width, rounding_mode="floor").float() + 0.5
    w = _screen_barycentric(tri_uv[tri_c], cx, cy).clamp_min(0)
    w = w / tri_z[tri_c]
    inv = w.sum(dim=1, keepdim=True)
    bary = torch.zeros((height * width, 3), device=device)
    bary[covered] = w / inv
    depth_map = torch.zeros(height * width, device=device)
    depth_map[covered] = 1.0 / inv.squeeze(1)
    return Fragments(winner.view(height, width), bary.view(height, width, 3), depth_map.view(height, width))


def _screen_barycentric(tri_uv: torch.Tensor, px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """Screen-space barycentric weights (P, 3) of points (px, py) in triangles (P, 3, 2).

    Orientation-free (no back-face culling): weights are normalised by the signed area.
    Degenerate triangles give weights with a negative entry, so they cover nothing.
    """
    a, b, c = tri_uv[:, 0], tri_uv[:, 1], tri_uv[:, 2]
    area = _edge(a[:, 0], a[:, 1], b[:, 0], b[:, 1], c[:, 0], c[:, 1])
    w0 = _edge(b[:, 0], b[:, 1], c[:, 0], c[:, 1], px, py)
    w1 = _edge(c[:, 0], c[:, 1], a[:, 0], a[:, 1], px, py)
    w2 = _edge(a[:, 0], a[:, 1], b[:, 0], b[:, 1], px, py)
    weights = torch.stack([w0, w1, w2], dim=1) / area[:, None]
    return torch.where(area.abs()[:, None] > 1e-12, weights, torch.full_like(weights, -1.0))


def interpolate(attributes: torch.Tensor, faces: torch.Tensor, fragments: Fragments) -> torch.Tensor:
    """Interpolate per-vertex attributes (N, C) to pixels (H, W, C); zero where empty."""
    tri = fragments.triangle.clamp_min(0)
    corner = attributes[faces[tri]]  # (H, W, 3, C)
    values = (corner * fragments.barycentric[..., None]).sum(dim=-2)
    return values * fragments.mask[..., None]
