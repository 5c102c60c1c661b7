"""Render isotropic 3D Gaussians to an image: gsplat on CUDA where installed, plain torch elsewhere.

The torch path projects each Gaussian to a screen-space disc (radius from its scale and depth),
lists the (Gaussian, pixel) pairs inside 3 sigma, sorts them front to back per pixel and
alpha-composites them over a white background: exact for isotropic Gaussians up to the
usual first-order projection.
"""

from __future__ import annotations

import torch

from backend.io.cameras import Camera
from backend.render.raster import camera_tensors


def _gsplat_available(device: torch.device) -> bool:
    if device.type != "cuda":
        return False
    try:
        import gsplat  # noqa: F401
    except ImportError:
        return False
    return True


def render_gaussians(centres: torch.Tensor, scales: torch.Tensor, colours: torch.Tensor, opacity: torch.Tensor,
                     camera: Camera) -> torch.Tensor:
    """RGB (H, W, 3) over white of Gaussians centres (G, 3), scales (G,), colours (G, 3), opacity (G,)."""
    if _gsplat_available(centres.device):
        return _render_gsplat(centres, scales, colours, opacity, camera)
    return _render_torch(centres, scales, colours, opacity, camera)


def _render_gsplat(centres, scales, colours, opacity, camera: Camera) -> torch.Tensor:
    from gsplat import rasterization

    K, w2c = camera_tensors(camera, centres.device)
    quats = torch.zeros(len(centres), 4, device=centres.device)
    quats[:, 0] = 1
    image, alpha, _ = rasterization(centres, quats, scales[:, None].expand(-1, 3), opacity, colours,
                                    w2c[None], K[None], camera.width, camera.height)
    return image[0] + (1 - alpha[0])


def _render_torch(centres, scales, colours, opacity, camera: Camera) -> torch.Tensor:
    device = centres.device
    h, w = camera.height, camera.width
    K, w2c = camera_tensors(camera, device)
    cam = centres @ w2c[:3, :3].T + w2c[:3, 3]
    z = cam[:, 2]
    front = z > 1e-3
    cam, z, scales, colours, opacity = cam[front], z[front], scales[front], colours[front], opacity[front]
    uv = cam[:, :2] / z[:, None] * K[[0, 1], [0, 1]] + K[:2, 2]
    sigma = scales * K[0, 0] / z  # screen-space standard deviation in pixels
    radius = torch.ceil(3 * sigma).clamp(max=max(h, w)).long()
    x0, y0 = (uv[:, 0] - 0.5).round().long() - radius, (uv[:, 1] - 0.5).round().long() - radius
    side = 2 * radius + 1
    count = side * side
    index = torch.repeat_interleave(torch.arange(len(uv), device=device), count)
    offset = torch.arange(index.numel(), device=device) - (torch.cumsum(count, 0) - count)[index]
    px = x0[index] + offset % side[index]
    py = y0[index] + torch.div(offset, side[index], rounding_mode="floor")
    inside = (px >= 0) & (px < w) & (py >= 0) & (py < h)
    index, px, py = index[inside], px[inside], py[inside]
    d2 = (px + 0.5 - uv[index, 0]) ** 2 + (py + 0.5 - uv[index, 1]) ** 2
    alpha = (opacity[index] * torch.exp(-0.5 * d2 / sigma[index] ** 2)).clamp(max=0.99)
    keep = alpha > 1 / 255
    index, px, py, alpha = index[keep], px[keep], py[keep], alpha[keep]
    pixel = py * w + px
    # front to back within each pixel: sort by pixel, then by depth
    order = torch.argsort(z[index], stable=True)
    order = order[torch.argsort(pixel[order], stable=True)]
    index, pixel, alpha = index[order], pixel[order], alpha[order]
    log_keep = torch.log1p(-alpha)
    cumulative = torch.cumsum(log_keep, 0)
    first = torch.ones_like(pixel, dtype=torch.bool)
    first[1:] = pixel[1:] != pixel[:-1]
    segment_start = torch.cummax(torch.where(first, torch.arange(len(pixel), device=device), 0), 0).values
    before = cumulative - log_keep - (cumulative[segment_start] - log_keep[segment_start])
    weight = alpha * torch.exp(before)
    image = torch.zeros(h * w, 3, device=device).index_add_(0, pixel, weight[:, None] * colours[index])
    coverage = torch.zeros(h * w, device=device).index_add_(0, pixel, weight)
    return (image + (1 - coverage)[:, None]).clamp(0, 1).view(h, w, 3)
