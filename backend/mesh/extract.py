"""Mesh once: density grid -> marching cubes -> cleanup -> decimation (scikit-image, trimesh, fast-simplification)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import trimesh
from skimage.measure import marching_cubes


class EmptyFieldError(ValueError):
    """Nothing in the field rises above the surface threshold: there is no object to mesh."""


def density_grid(density: Callable[[torch.Tensor], torch.Tensor], resolution: int, bound: float,
                 chunk: int = 65536) -> np.ndarray:
    """Density (R, R, R) at the centres of a regular grid over [-bound, bound]³, indexed [x, y, z]."""
    axis = torch.linspace(-bound, bound, resolution)
    points = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)
    values = []
    with torch.no_grad():
        for start in range(0, len(points), chunk):
            values.append(density(points[None, start:start + chunk])[0])
    return torch.cat(values).reshape(resolution, resolution, resolution).numpy()


def extract_mesh(grid: np.ndarray, bound: float, level: float, keep_fraction: float = 0.1) -> trimesh.Trimesh:
    """The ``level`` isosurface of ``grid`` as a clean mesh in world units.

    Keeps the largest connected component and any other holding at least ``keep_fraction`` of its
    faces (separate limbs stay, floaters go); drops degenerate faces.
    """
    if not np.isfinite(grid).all():
        raise EmptyFieldError("the density grid has non-finite values")
    if grid.max() <= level:
        raise EmptyFieldError(f"no density above the surface level {level:g} (max {grid.max():.3g}): nothing to mesh")
    if grid.min() >= level:
        raise EmptyFieldError("the whole volume is above the surface level: the field is solid, not an object")
    resolution = grid.shape[0]
    spacing = 2 * bound / (resolution - 1)
    vertices, faces, _, _ = marching_cubes(grid, level=level, spacing=(spacing,) * 3)
    mesh = trimesh.Trimesh(vertices - bound, faces[:, ::-1], process=True)  # outward normals
    mesh.update_faces(mesh.nondegenerate_faces())
    parts = mesh.split(only_watertight=False)
    if len(parts) > 1:
        largest = max(len(p.faces) for p in parts)
        mesh = trimesh.util.concatenate([p for p in parts if len(p.faces) >= keep_fraction * largest])
    mesh.remove_unreferenced_vertices()
    return mesh


def decimate(mesh: trimesh.Trimesh, target_faces: int) -> trimesh.Trimesh:
    """Quadric decimation to about ``target_faces`` faces (no-op when already smaller)."""
    if len(mesh.faces) <= target_faces:
        return mesh
    import fast_simplification

    vertices, faces = fast_simplification.simplify(np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces),
                                                   target_count=target_faces)
    simplified = trimesh.Trimesh(vertices, faces, process=True)
    simplified.update_faces(simplified.nondegenerate_faces())
    simplified.remove_unreferenced_vertices()
    return simplified
