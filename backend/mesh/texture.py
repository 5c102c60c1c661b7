"""Texture bake: rasterise the atlas in UV space, colour each texel from the field, dilate seams."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy import ndimage

from backend.mesh.uv import Atlas
from backend.render.raster import rasterize_screen


def bake(vertices: np.ndarray, atlas: Atlas, colour: Callable[[torch.Tensor], torch.Tensor], size: int = 512,
         chunk: int = 65536) -> np.ndarray:
    """uint8 RGB texture (size, size, 3); row 0 is the top (v = 1), as image files store it.

    ``colour`` maps surface points (P, 3) to RGB (P, 3) in [0, 1].
    """
    uv = torch.as_tensor(atlas.uvs, dtype=torch.float32)
    pixels = torch.stack([uv[:, 0] * size, (1 - uv[:, 1]) * size], dim=1)
    faces = torch.as_tensor(atlas.faces)
    fragments = rasterize_screen(pixels, torch.ones(len(pixels)), faces, size, size)
    covered = fragments.mask
    corners = torch.as_tensor(vertices, dtype=torch.float32)[torch.as_tensor(atlas.vertex_map)][faces[fragments.triangle[covered]]]
    points = (corners * fragments.barycentric[covered][..., None]).sum(dim=1)
    texels = torch.zeros(size, size, 3)
    with torch.no_grad():
        texels[covered] = torch.cat([colour(points[s:s + chunk]) for s in range(0, len(points), chunk)]).clamp(0, 1)
    image = texels.numpy()
    mask = covered.numpy()
    if mask.any():
        # fill every empty texel from its nearest covered one, so filtering across seams finds colour
        _, nearest = ndimage.distance_transform_edt(~mask, return_indices=True)
        image = image[nearest[0], nearest[1]]
    return (image * 255 + 0.5).astype(np.uint8)
