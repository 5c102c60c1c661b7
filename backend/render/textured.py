"""Render a UV-textured triangle mesh (our rasteriser + bilinear texture lookup), over white."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from backend.io.cameras import Camera
from backend.render.raster import interpolate, rasterize


def render_textured(vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray, texture: np.ndarray,
                    camera: Camera, supersample: int = 1) -> np.ndarray:
    """RGB (H, W, 3) in [0, 1]; ``uvs`` per vertex with a bottom-left origin, ``texture`` uint8 (h, w, 3).

    ``supersample`` > 1 renders at that factor and box-filters down, as the world's ground truth is rendered
    (and as Blender anti-aliases): one sample a pixel draws the outline's pixels all or nothing.
    """
    big = camera.resized(camera.width * supersample, camera.height * supersample) if supersample > 1 else camera
    faces_t = torch.as_tensor(faces, dtype=torch.long)
    fragments = rasterize(torch.as_tensor(vertices, dtype=torch.float32), faces_t, big)
    uv = interpolate(torch.as_tensor(uvs, dtype=torch.float32), faces_t, fragments)
    grid = torch.stack([uv[..., 0] * 2 - 1, (1 - uv[..., 1]) * 2 - 1], dim=-1)[None]
    image = torch.as_tensor(texture[..., :3], dtype=torch.float32).permute(2, 0, 1)[None] / 255
    colour = F.grid_sample(image, grid, mode="bilinear", align_corners=False)[0].permute(1, 2, 0)
    mask = fragments.mask[..., None].float()
    out = colour * mask + (1 - mask)
    if supersample > 1:
        out = F.avg_pool2d(out.permute(2, 0, 1)[None], supersample)[0].permute(1, 2, 0)
    return out.numpy()
