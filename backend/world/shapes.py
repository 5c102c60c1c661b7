"""Mesh parts the world is assembled from (trimesh primitives), and how parts are merged."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh


@dataclass
class Part:
    """One closed surface of an object: vertices (N, 3) and triangles (M, 3)."""

    vertices: np.ndarray
    faces: np.ndarray


def ellipsoid(center: np.ndarray, radii: np.ndarray, rings: int = 12, segments: int = 18) -> Part:
    sphere = trimesh.creation.uv_sphere(radius=1.0, count=[rings, segments])
    return Part(np.asarray(sphere.vertices) * radii + center, np.asarray(sphere.faces))


def capsule_down(top: np.ndarray, length: float, radius: float, rings: int = 14, segments: int = 10) -> Part:
    """A capsule hanging from ``top`` along -Z: its axis runs from ``top`` to ``top - length``."""
    cap = trimesh.creation.capsule(height=length, radius=radius, count=[segments, rings])
    vertices = np.asarray(cap.vertices) + top - np.array([0.0, 0.0, length / 2])
    return Part(vertices, np.asarray(cap.faces))


def box(center: np.ndarray, extents: np.ndarray, rotation: np.ndarray | None = None) -> Part:
    """A box with its own four vertices per side, so shading normals stay flat."""
    corners = trimesh.creation.box(extents=extents)
    mesh = corners.copy()
    mesh.unmerge_vertices()  # flat sides
    mesh = mesh.subdivide().subdivide()  # enough vertices to carry correspondences
    vertices = np.asarray(mesh.vertices)
    if rotation is not None:
        vertices = vertices @ rotation.T
    return Part(vertices + center, np.asarray(mesh.faces))


def cylinder(center: np.ndarray, radius: float, height: float, rotation: np.ndarray | None = None, sections: int = 16) -> Part:
    mesh = trimesh.creation.cylinder(radius=radius, height=height, sections=sections)
    vertices = np.asarray(mesh.vertices)
    if rotation is not None:
        vertices = vertices @ rotation.T
    return Part(vertices + center, np.asarray(mesh.faces))


def merge(parts: list[Part]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate parts -> vertices (N, 3), faces (M, 3) int64, part id per vertex (N,)."""
    vertices, faces, part_ids = [], [], []
    offset = 0
    for index, part in enumerate(parts):
        vertices.append(part.vertices)
        faces.append(part.faces + offset)
        part_ids.append(np.full(len(part.vertices), index))
        offset += len(part.vertices)
    return np.concatenate(vertices), np.concatenate(faces).astype(np.int64), np.concatenate(part_ids)


def rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues rotation matrix (3, 3) about a (not necessarily unit) axis."""
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    x, y, z = axis
    k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)
