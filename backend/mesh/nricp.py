"""Non-rigid ICP (Amberg et al. 2007, "Optimal Step Nonrigid ICP Algorithms for Surface Registration").

This is trimesh's ``nricp_amberg`` step for step (its closest-point queries and normalisation are
trimesh's own), with one change: each iteration's linear system is formed against a dense right-hand
side. trimesh 5.2 builds that side as a LIL sparse matrix with one Python list per row (4 per edge),
which took 40 of the 100 seconds of a 32-frame monocular job's tracking. The test suite holds this to
trimesh's result on the same input, so a trimesh upgrade that changes the algorithm shows up there.
"""

from __future__ import annotations

import numpy as np
import trimesh
from scipy import sparse
from scipy.sparse.linalg import spsolve
from trimesh.registration import _denormalize_by_source, _from_mesh, _normalize_by_source

# (stiffness, landmark weight, normal weight, iterations) per stage: trimesh's default schedule
DEFAULT_STEPS = [[0.01, 10, 0.5, 10], [0.02, 5, 0.5, 10], [0.03, 2.5, 0.5, 10], [0.01, 0, 0.0, 10]]


def _incidence(mesh: trimesh.Trimesh) -> sparse.coo_matrix:
    """Node-arc incidence of the edges, each row weighted by 1 / edge length (the paper's Eq. 10)."""
    edges = mesh.edges
    rows = np.repeat(np.arange(len(edges)), 2)
    data = np.ones(2 * len(edges), np.float32)
    data[1::2] = -1
    lengths = np.linalg.norm(mesh.vertices[edges[:, 0]] - mesh.vertices[edges[:, 1]], axis=-1)
    data *= np.repeat(1 / lengths, 2)
    return sparse.coo_matrix((data, (rows, edges.ravel())), shape=(len(edges), edges.max() + 1))


def _homogeneous(points: np.ndarray) -> sparse.csr_matrix:
    """Each point as a row [x y z 1] in its own 4 columns (Eq. 8): D @ X applies per-vertex affine maps X."""
    count = len(points)
    data = np.concatenate([points, np.ones((count, 1))], axis=-1).ravel()
    return sparse.csr_matrix((data, (np.repeat(np.arange(count), 4), np.arange(4 * count))), shape=(count, 4 * count))


def _solve(stiffness_term: sparse.csr_matrix, D: sparse.csr_matrix, weights: np.ndarray, nearest: np.ndarray,
           stiffness: float, landmarks_D: sparse.csr_matrix | None, landmark_targets: np.ndarray | None,
           landmark_weight: float) -> np.ndarray:
    """The per-vertex affine maps X (4V, 3) minimising Eq. 12 (normal equations, dense right-hand side)."""
    data = D.multiply(weights[:, None]).tocsr()
    blocks = [stiffness * stiffness_term, data]
    # the right-hand side is zero on the stiffness rows; trimesh stores it in float32
    rhs = data.T @ (nearest * weights[:, None]).astype(np.float32)
    if landmarks_D is not None:
        blocks.append(landmark_weight * landmarks_D)
        rhs = rhs + (landmark_weight * landmarks_D).T @ (landmark_targets * landmark_weight).astype(np.float32)
    A = sparse.vstack(blocks, format="csr")
    return np.asarray(spsolve((A.T @ A).tocsc(), rhs))


def nricp_amberg(source_mesh: trimesh.Trimesh, target_geometry: trimesh.Trimesh, source_landmarks: np.ndarray | None = None,
                 target_positions: np.ndarray | None = None, steps: list[list[float]] | None = None, eps: float = 0.0001,
                 gamma: float = 1, distance_threshold: float = 0.1, use_faces: bool = True, use_vertex_normals: bool = True,
                 neighbors_count: int = 8) -> np.ndarray:
    """The source mesh's vertices registered onto ``target_geometry``; the arguments are trimesh's
    (landmarks as vertex indices only)."""
    target_geometry, target_positions, centroid, scale = _normalize_by_source(source_mesh, target_geometry, target_positions)
    vertex_count = len(source_mesh.vertices)
    stiffness_term = sparse.kron(_incidence(source_mesh), np.diag([1, 1, 1, gamma])).tocsr()
    D = _homogeneous(source_mesh.vertices)
    DN = _homogeneous(source_mesh.vertex_normals)
    X = np.tile(np.concatenate([np.eye(3), np.zeros((1, 3))]), (vertex_count, 1))
    landmarks_D = None
    if source_landmarks is not None and target_positions is not None:
        landmarks_D = D[source_landmarks, :]
    transformed = source_mesh.vertices.copy()
    for stiffness, landmark_weight, normal_weight, max_iterations in steps or DEFAULT_STEPS:
        if not use_faces and neighbors_count < 3:
            normal_weight = 0  # normals from fewer than 3 neighbours are not estimated
        last_error, error = np.finfo(np.float32).max, np.finfo(np.float16).max
        iteration = 0
        while last_error - error > eps and (max_iterations is None or iteration < max_iterations):
            query = _from_mesh(target_geometry, transformed, from_vertices_only=not use_faces,
                               return_normals=normal_weight > 0,
                               return_interpolated_normals=normal_weight > 0 and use_vertex_normals,
                               neighbors_count=neighbors_count)
            weights = np.ones(vertex_count)
            weights[query["distances"] > distance_threshold] = 0
            if normal_weight > 0 and "normals" in query:
                target_normals = query["normals"]
                if use_vertex_normals and "interpolated_normals" in query:
                    target_normals = query["interpolated_normals"]
                dot = np.einsum("ij,ij->i", DN @ X, target_normals)
                dot = np.clip(dot, 0, 1) if use_faces else np.abs(dot)  # orientation is known for meshes only
                weights = weights * dot**normal_weight
            X = _solve(stiffness_term, D, weights, query["nearest"], stiffness, landmarks_D, target_positions,
                       landmark_weight)
            transformed = D @ X
            last_error = error
            error = (np.linalg.norm(query["nearest"] - transformed, axis=-1) * weights).mean()
            iteration += 1
    return _denormalize_by_source(source_mesh, target_geometry, target_positions, transformed, centroid, scale)
