"""The footage's outline as a registration term: a tracked mesh seen by a footage camera should fill its matte.

The surface a frame's triplane draws is only as good as the views behind it, and a monocular job's are mostly made
up: the mesh registered onto it drifts off the one outline that is real (world seeds 1000000-3 from the input
camera: each frame's surface outlines the matte at IoU 0.92, the tracked mesh at 0.90, down to 0.68). Each
iteration of the registration (``backend.mesh.arap``) asks every footage view three things:
- a vertex that projects outside the matte (by more than ``SLACK`` pixels) belongs on the ray through the matte's
  nearest edge;
- a vertex on the edge of the mesh's silhouette belongs on the ray through the matte's nearest edge (within
  ``REACH`` pixels): this holds an outline that fits, where the first pull alone would let the surface terms drag it
  back out as soon as it were inside, and the registration would swing between the two;
- a matte pixel the mesh leaves uncovered, within ``REACH`` pixels of its silhouette, pulls the nearest vertex on
  the silhouette's edge onto its ray (a protrusion the nearest-edge pull does not reach).
All are point-to-ray terms: a 3x3 block (I - d dᵀ) per vertex, which moves a vertex across the ray and leaves its
depth to the surface terms, so they drop into the registration's linear system beside the point-to-plane ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
from scipy import ndimage
from scipy.spatial import cKDTree

from backend.io.cameras import Camera
from backend.mesh.level import silhouette_iou
from backend.render.raster import rasterize

OUTLINE_SIDE = 128  # mattes are compared at most this many pixels along a side (the registration rasterises each iteration)
SLACK = 1.0  # pixels: a vertex this close to the matte counts as inside (its outline pixels are all or nothing)
REACH = 6.0  # pixels: an uncovered matte pixel farther from the mesh's silhouette is a part the mesh does not have
EDGE = 1.5  # pixels: a vertex this close to the outside of the mesh's silhouette is on its edge
# a frame whose own surface outlines the mattes worse than this (mean IoU) is too poor to pull onto them: the pulls tear
# the mesh (AnimatedMorphCube: vertex error 11.8 -> 24.7 % without this floor, 11.4 % with it; a monocular pendulum with
# bars a pixel wide 12.2 -> 10.8 dB from its camera, 12.3 with it)
TRUSTED_IOU = 0.8


@dataclass
class Outline:
    """One footage view's matte at one frame, at most ``OUTLINE_SIDE`` pixels along a side."""

    camera: Camera
    mask: np.ndarray  # (H, W) bool
    hold: float = 1.0  # the second pull's weight (an edge vertex held on the matte's edge) against the other two's
    _outside: np.ndarray = field(init=False, repr=False)  # (H, W): pixels from every pixel to the nearest matte pixel
    _edge: np.ndarray = field(init=False, repr=False)  # (E, 2) sub-pixel (x, y) points on the matte's edge
    _edge_tree: cKDTree | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        small = self.camera.at_most(OUTLINE_SIDE)
        if small is not self.camera:
            self.mask = cv2.resize(self.mask.astype(np.float32), (small.width, small.height), interpolation=cv2.INTER_AREA) > 0.5
            self.camera = small
        self.mask = np.asarray(self.mask, bool)
        if self.mask.shape != (self.camera.height, self.camera.width):
            raise ValueError(f"a matte of {self.mask.shape[::-1]} pixels for a camera of {self.camera.width}x{self.camera.height}")
        self._outside = ndimage.distance_transform_edt(~self.mask)
        # the edge runs between each matte pixel beside the background and that background pixel: halfway between their
        # centres (a mesh whose outline passes through the matte pixels' centres covers only half of them)
        inward, nearest = ndimage.distance_transform_edt(self.mask, return_indices=True)
        rim = np.argwhere(self.mask & (inward < 1.5))
        outer = nearest[:, rim[:, 0], rim[:, 1]].T
        self._edge = (rim + outer)[:, ::-1] / 2 + 0.5
        self._edge_tree = cKDTree(self._edge) if len(self._edge) else None

    def rays(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For image points (P, 2) as (x, y): the point-to-ray blocks (P, 3, 3) I - d dᵀ of the rays through them and
        their right-hand sides (P, 3), the block times the camera centre (every ray starts there)."""
        K = self.camera.K
        local = np.stack([(points[:, 0] - K[0, 2]) / K[0, 0], (points[:, 1] - K[1, 2]) / K[1, 1], np.ones(len(points))], -1)
        d = local @ self.camera.rotation
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        blocks = np.eye(3) - np.einsum("pi,pj->pij", d, d)
        return blocks, blocks @ self.camera.center

    def terms(self, vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per vertex, the sum of its point-to-ray blocks (N, 3, 3) and right-hand sides (N, 3); zero where the outline
        asks nothing of it. Three pulls, one unit each (the second ``hold``): a vertex outside the matte onto its nearest
        edge; a vertex on the edge of the mesh's silhouette onto the matte's edge nearest it (which holds an outline that
        fits where it is);
        the uncovered matte pixels nearest a vertex on the silhouette's edge, onto their rays."""
        count = len(vertices)
        blocks, rhs = np.zeros((count, 3, 3)), np.zeros((count, 3))
        if self._edge_tree is None:
            return blocks, rhs
        h, w = self.mask.shape
        uv, z = self.camera.project(vertices)
        front = z > 1e-6
        col = np.clip(np.floor(uv[:, 0]), 0, w - 1).astype(int)
        row = np.clip(np.floor(uv[:, 1]), 0, h - 1).astype(int)
        beyond = (uv[:, 0] < 0) | (uv[:, 0] >= w) | (uv[:, 1] < 0) | (uv[:, 1] >= h)
        outside = front & ((self._outside[row, col] > SLACK) | beyond)
        silhouette = rasterize(torch.as_tensor(vertices, dtype=torch.float32), torch.as_tensor(faces, dtype=torch.long),
                               self.camera).mask.numpy()
        inside_depth = ndimage.distance_transform_edt(silhouette)  # 0 outside the silhouette
        on_edge = front & ~beyond & ~outside & (inside_depth[row, col] <= EDGE)
        distance, nearest = self._edge_tree.query(uv)
        held = on_edge & (distance <= REACH)
        pulled = outside | held
        if pulled.any():
            b, r = self.rays(self._edge[nearest[pulled]])
            weight = np.where(held[pulled], self.hold, 1.0)
            blocks[pulled] += b * weight[:, None, None]
            rhs[pulled] += r * weight[:, None]
        gap = ndimage.distance_transform_edt(~silhouette)
        uncovered = np.argwhere(self.mask & (gap > SLACK) & (gap <= REACH))
        if len(uncovered) == 0 or not on_edge.any():
            return blocks, rhs
        edge = np.flatnonzero(on_edge)
        centres = uncovered[:, ::-1] + 0.5
        owner = edge[cKDTree(uv[edge]).query(centres)[1]]
        b, r = self.rays(centres)
        many = np.bincount(owner, minlength=count).astype(np.float64)  # a vertex pulled by several pixels: their mean
        np.add.at(blocks, owner, b / many[owner, None, None])
        np.add.at(rhs, owner, r / many[owner, None])
        return blocks, rhs


def outline_terms(outlines: Sequence[Outline], vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every outline's terms for the mesh (vertices (N, 3), faces), summed over the views."""
    blocks, rhs = np.zeros((len(vertices), 3, 3)), np.zeros((len(vertices), 3))
    for outline in outlines:
        b, r = outline.terms(vertices, faces)
        blocks += b
        rhs += r
    return blocks, rhs


def trusted(outlines: Sequence[Outline], surface_vertices: np.ndarray, surface_faces: np.ndarray,
            floor: float = TRUSTED_IOU) -> list[Outline]:
    """``outlines`` when the frame's reconstructed surface already outlines their mattes at mean IoU ``floor`` or better,
    else none: a surface that poor is not one a mesh can be pulled from onto the footage's outline without tearing."""
    if not outlines:
        return []
    score = silhouette_iou(surface_vertices, surface_faces, [o.camera for o in outlines], [o.mask for o in outlines])
    return list(outlines) if score >= floor else []
