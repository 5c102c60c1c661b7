"""Texture bake: rasterise the atlas in UV space, colour each texel from the footage that sees it and the field
elsewhere, dilate seams."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from backend.mesh.projection import Footage, project_footage
from backend.mesh.uv import Atlas
from backend.render.raster import rasterize_screen

# the field's weight beside the footage's (a camera seeing a texel squarely weighs 1): it fills what no camera
# sees and steadies texels seen only at grazing angles
FIELD_WEIGHT = 0.05


def bake(vertices: np.ndarray, atlas: Atlas, colour: Callable[[torch.Tensor], torch.Tensor], size: int = 512,
         chunk: int = 65536, footage: Footage | None = None,
         tracked: Iterable[tuple[np.ndarray, Footage]] = ()) -> np.ndarray:
    """uint8 RGB texture (size, size, 3); row 0 is the top (v = 1), as image files store it.

    ``colour`` maps surface points (P, 3) to RGB (P, 3) in [0, 1]; ``footage`` (views of the mesh's frame), where
    given, paints every texel a camera sees (`bench track`, world seeds: the tracked mesh
    15.8 -> 16.7 dB PSNR_FG from held-out views, 18.5 -> 20.3 at frame 0). ``tracked`` adds later frames: pairs of
    the atlas's vertices (N', 3) where tracking put them and that frame's footage; each paints the texels it sees
    where they lie then, so a side the first frame hides takes the footage that shows it later.
    """
    covered, points, normals = texel_surface(vertices, atlas, size)
    with torch.no_grad():
        texels = torch.cat([colour(points[s:s + chunk]) for s in range(0, len(points), chunk)]).clamp(0, 1)
    painted, weight = torch.zeros_like(texels), torch.zeros(len(texels))
    footage_seen = footage is not None
    if footage is not None:
        painted, weight = project_footage(points, normals, np.asarray(vertices)[atlas.vertex_map], atlas.faces, footage)
    moving = replace(atlas, vertex_map=np.arange(len(atlas.uvs)))  # tracked vertices come in atlas order
    for frame_vertices, frame_footage in tracked:
        _, frame_points, frame_normals = texel_surface(frame_vertices, moving, size)  # the same texels, moved
        colour_sum, weight_sum = project_footage(frame_points, frame_normals, frame_vertices, atlas.faces, frame_footage)
        painted, weight = painted + colour_sum, weight + weight_sum
        footage_seen = True
    if footage_seen:
        texels = (painted + FIELD_WEIGHT * texels) / (weight + FIELD_WEIGHT)[:, None]
    image = np.zeros((size, size, 3), dtype=np.float32)
    mask = covered.numpy()
    image[mask] = texels.clamp(0, 1).numpy()
    if mask.any():
        # fill every empty texel from its nearest covered one, so filtering across seams finds colour
        _, nearest = ndimage.distance_transform_edt(~mask, return_indices=True)
        image = image[nearest[0], nearest[1]]
    return (image * 255 + 0.5).astype(np.uint8)


def texel_surface(vertices: np.ndarray, atlas: Atlas, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The texels the atlas covers (size, size) bool, their surface points (P, 3) and the faces' normals (P, 3)."""
    uv = torch.as_tensor(atlas.uvs, dtype=torch.float32)
    pixels = torch.stack([uv[:, 0] * size, (1 - uv[:, 1]) * size], dim=1)
    faces = torch.as_tensor(atlas.faces)
    fragments = rasterize_screen(pixels, torch.ones(len(pixels)), faces, size, size)
    covered = fragments.mask
    corners = torch.as_tensor(vertices, dtype=torch.float32)[torch.as_tensor(atlas.vertex_map)][faces[fragments.triangle[covered]]]
    points = (corners * fragments.barycentric[covered][..., None]).sum(dim=1)
    normals = F.normalize(torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), dim=1)
    return covered, points, normals
