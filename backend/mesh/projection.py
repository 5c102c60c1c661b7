"""Colour surface points from the footage that sees them: the texture takes the filmed pixels where it can.

A tiny model's colour field is blurrier than the footage it was fitted to, and at the isosurface (where the
mesh lies, not where the volume renderer gathers colour) it is further off: on world seeds the field-baked
mesh lost 3–4 dB PSNR_FG to the volume render of the same triplane from views nobody filmed, the mesh's
geometry alone 0.3 (`/work/runs/s13/bakediag.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from backend.io.cameras import Camera
from backend.render.raster import rasterize

SHARPNESS = 4  # a view's weight is cos⁴ of the angle between the surface normal and its ray: square views win
DEPTH_TOLERANCE = 0.015  # of the mesh's bounding-box diagonal: a point this close to the nearest surface is visible
# the depth map that decides visibility is rasterised at most this many pixels along a side (the colours still come
# from the footage at full size): at 1920x1080 the raster took 1.2 s a view, nine tenths of a painted frame
VISIBILITY_SIDE = 512


@dataclass
class Footage:
    """What the cameras filmed at the mesh's frame."""

    cameras: list[Camera]
    frames: np.ndarray  # (V, H, W, 3) uint8
    mattes: np.ndarray | None = None  # (V, H, W) bool: where each view shows the object; None: everywhere

    def __post_init__(self) -> None:
        if len(self.frames) != len(self.cameras):
            raise ValueError(f"{len(self.frames)} footage views for {len(self.cameras)} cameras")
        if self.mattes is not None and self.mattes.shape != self.frames.shape[:3]:
            raise ValueError(f"mattes are {self.mattes.shape}, the footage {self.frames.shape[:3]}")


def project_footage(points: torch.Tensor, normals: torch.Tensor, vertices: np.ndarray, faces: np.ndarray,
                    footage: Footage) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted colour sums (P, 3) and total weights (P,) of surface ``points`` with outward ``normals`` (P, 3)
    from every footage view that sees them unoccluded by the mesh (``vertices``, ``faces``) and on the object."""
    mesh_vertices = torch.as_tensor(vertices, dtype=torch.float32)
    mesh_faces = torch.as_tensor(faces, dtype=torch.long)
    tolerance = DEPTH_TOLERANCE * float(np.linalg.norm(np.ptp(np.asarray(vertices), axis=0)))
    colour = torch.zeros(len(points), 3)
    weight = torch.zeros(len(points))
    for view, camera in enumerate(footage.cameras):
        small = camera.at_most(VISIBILITY_SIDE)
        nearest = rasterize(mesh_vertices, mesh_faces, small)
        pixels = torch.as_tensor(camera.projection(), dtype=torch.float32)
        projected = torch.cat([points, torch.ones(len(points), 1)], dim=1) @ pixels.T
        depth = projected[:, 2]
        x, y = projected[:, 0] / depth.clamp_min(1e-6), projected[:, 1] / depth.clamp_min(1e-6)
        inside = (depth > 0) & (x >= 0) & (x < camera.width) & (y >= 0) & (y < camera.height)
        col = x.clamp(0, camera.width - 1).long()
        row = y.clamp(0, camera.height - 1).long()
        small_col = (x * small.width / camera.width).clamp(0, small.width - 1).long()
        small_row = (y * small.height / camera.height).clamp(0, small.height - 1).long()
        visible = inside & nearest.mask[small_row, small_col] & ((nearest.depth[small_row, small_col] - depth).abs() < tolerance)
        if footage.mattes is not None:
            # a pixel on the matte's outline is part background (white fringes on the texture): only pixels inside
            # it paint (world seeds, tracked mesh +0.11 dB PSNR_FG; also leaving out the pixels next to the
            # outline, which the bilinear lookup still blends in, lost 0.1 dB at 64²: too little footage left)
            visible &= torch.as_tensor(ndimage.binary_erosion(footage.mattes[view]))[row, col]
        towards_camera = F.normalize(torch.as_tensor(camera.center, dtype=torch.float32)[None] - points, dim=1)
        facing = (normals * towards_camera).sum(dim=1).clamp_min(0) ** SHARPNESS
        w = facing * visible.float()
        image = torch.as_tensor(footage.frames[view], dtype=torch.float32).permute(2, 0, 1)[None] / 255
        grid = torch.stack([x / camera.width * 2 - 1, y / camera.height * 2 - 1], dim=-1)[None, None]
        sampled = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)[0, :, 0].T
        colour += torch.where(visible[:, None], w[:, None] * sampled, 0.0)
        weight += w
    return colour, weight
