"""Closest points on a triangle mesh, through libigl's AABB tree.

trimesh's ``closest_point`` finds candidate triangles with one R-tree query per point from Python: 0.37 s for a
tracked frame's ~2,000 vertices on its ~15,000-face surface, where libigl answers the same in about 0.01 s.
"""

from __future__ import annotations

import igl
import numpy as np
import trimesh


def closest_points(surface: trimesh.Trimesh, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each of ``points`` (N, 3): its closest point on ``surface`` (N, 3, float64), the distance to it (N,) and
    the triangle it lies on (N,)."""
    if len(surface.faces) == 0:
        raise ValueError("the surface has no triangles to be close to")
    squared, triangle, closest = igl.point_mesh_squared_distance(
        np.ascontiguousarray(points, dtype=np.float64), np.ascontiguousarray(surface.vertices, dtype=np.float64),
        np.ascontiguousarray(surface.faces, dtype=np.int64))
    return closest, np.sqrt(squared), triangle
