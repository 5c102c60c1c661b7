"""Track one mesh through time with canonical surface coordinates: fixed topology, moving vertices.

At each time we have surface samples: their positions at that time and their canonical
coordinates (where they sit at frame 0). A vertex of the frame-0 mesh is moved to where the
canonical field equals its own canonical coordinate: its nearest samples in canonical space,
then a local affine fit canonical -> position over those neighbours (sub-sample accuracy).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

NEIGHBOURS = 12


def track_vertices(canonical_vertices: np.ndarray, sample_positions: np.ndarray, sample_canonical: np.ndarray,
                   neighbours: int = NEIGHBOURS) -> np.ndarray:
    """Positions (N, 3) at one time for vertices with canonical coordinates (N, 3)."""
    if len(sample_positions) < 4:
        raise ValueError("too few surface samples to track against")
    k = min(neighbours, len(sample_positions))
    distance, index = cKDTree(sample_canonical).query(canonical_vertices, k=k)
    src = sample_canonical[index]  # (N, k, 3)
    dst = sample_positions[index]
    weights = 1.0 / (distance + 1e-4)
    weights /= weights.sum(axis=1, keepdims=True)
    src_mean = (weights[..., None] * src).sum(axis=1)
    dst_mean = (weights[..., None] * dst).sum(axis=1)
    a = (src - src_mean[:, None]) * np.sqrt(weights)[..., None]
    b = (dst - dst_mean[:, None]) * np.sqrt(weights)[..., None]
    # regularised least squares for a 3x3 map per vertex (samples on a surface are nearly planar)
    ata = np.einsum("nki,nkj->nij", a, a) + 1e-6 * np.eye(3)
    atb = np.einsum("nki,nkj->nij", a, b)
    linear = np.linalg.solve(ata, atb)  # (N, 3, 3): row vectors times linear
    return dst_mean + np.einsum("ni,nij->nj", canonical_vertices - src_mean, linear)


def smooth_in_time(frames: np.ndarray, strength: float = 0.25) -> np.ndarray:
    """Centred [s, 1-2s, s] filter over frames (F, N, 3): removes jitter without lagging the motion.

    End frames are kept as they are, so the first frame stays exactly the canonical mesh.
    """
    if len(frames) < 3 or strength <= 0:
        return frames
    out = frames.copy()
    out[1:-1] = strength * frames[:-2] + (1 - 2 * strength) * frames[1:-1] + strength * frames[2:]
    return out


@dataclass
class QualityReport:
    flipped_pct: list[float]  # triangles whose normal turned by more than 90° since the previous frame
    stretched_pct: list[float]  # edges more than twice or less than half their frame-0 length


def mesh_quality(frames: np.ndarray, faces: np.ndarray) -> QualityReport:
    def normals(v: np.ndarray) -> np.ndarray:
        tri = v[faces]
        n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)

    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    rest = np.linalg.norm(frames[0][edges[:, 0]] - frames[0][edges[:, 1]], axis=1)
    flipped, stretched = [0.0], [0.0]
    previous = normals(frames[0])
    for v in frames[1:]:
        current = normals(v)
        flipped.append(float(100 * np.mean((current * previous).sum(axis=1) < 0)))
        ratio = np.linalg.norm(v[edges[:, 0]] - v[edges[:, 1]], axis=1) / np.maximum(rest, 1e-12)
        stretched.append(float(100 * np.mean((ratio > 2) | (ratio < 0.5))))
        previous = current
    return QualityReport(flipped, stretched)
