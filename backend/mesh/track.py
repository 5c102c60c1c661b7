"""Track one mesh through time with canonical surface coordinates: fixed topology, moving vertices.

At each time we have surface samples: their positions at that time and their canonical
coordinates (where they sit at frame 0). A vertex of the frame-0 mesh is moved to where the
canonical field equals its own canonical coordinate: its nearest samples in canonical space,
then a local affine fit canonical -> position over those neighbours (sub-sample accuracy).
Those matches are as noisy as the learned canonical field, so they are not the answer themselves: the
previous frame's mesh is registered onto this frame's surface, the matches pulling on it as landmarks
(``SurfaceFollower``): as rigidly as possible (``backend.mesh.arap``) by default, or by non-rigid ICP
with per-vertex affine maps, which lets parts slide along the surface.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from backend.mesh.arap import register_arap
from backend.mesh.extract import decimate
from backend.mesh.nricp import nricp_amberg
from backend.mesh.outline import Outline
from backend.mesh.proximity import closest_points

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
    correction = np.einsum("ni,nij->nj", canonical_vertices - src_mean, linear)
    # a noisy field makes the local map ill-conditioned: never extrapolate past the neighbourhood's own size
    reach = np.linalg.norm(dst - dst_mean[:, None], axis=-1).max(axis=1, keepdims=True)
    length = np.linalg.norm(correction, axis=1, keepdims=True)
    return dst_mean + correction * np.minimum(1.0, reach / np.maximum(length, 1e-12))


def vertex_neighbours(faces: np.ndarray, count: int) -> list[np.ndarray]:
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges = np.concatenate([edges, edges[:, ::-1]])
    order = np.argsort(edges[:, 0], kind="stable")
    starts = np.searchsorted(edges[order, 0], np.arange(count + 1))
    return [np.unique(edges[order[starts[v]:starts[v + 1]], 1]) for v in range(count)]


def reject_outliers(positions: np.ndarray, rest: np.ndarray, neighbours: list[np.ndarray], threshold: float) -> np.ndarray:
    """Vertices whose displacement strays from the median of their 1-ring's by more than ``threshold`` take
    that median instead: isolated wrong correspondences become spikes otherwise. A coherent motion (every
    vertex agreeing with its ring) is left exactly as it is."""
    displacement = positions - rest
    ring_median = displacement.copy()  # a vertex without neighbours keeps its own
    sizes = np.fromiter((len(n) for n in neighbours), dtype=np.int64, count=len(neighbours))
    for size in np.unique(sizes[sizes > 0]):  # rings of one size at a time: one median call, not one per vertex
        members = np.flatnonzero(sizes == size)
        rings = np.stack([neighbours[v] for v in members])
        ring_median[members] = np.median(displacement[rings], axis=1)
    stray = np.linalg.norm(displacement - ring_median, axis=1) > threshold
    out = positions.copy()
    out[stray] = rest[stray] + ring_median[stray]
    return out


def project_to_surface(points: np.ndarray, samples: np.ndarray, neighbours: int = 8) -> np.ndarray:
    """Each point onto the plane fitted to its nearest surface samples: the tracked mesh lies on the
    reconstructed surface of its frame, whatever the correspondences did."""
    k = min(neighbours, len(samples))
    _, index = cKDTree(samples).query(points, k=k)
    near = samples[index]
    centre = near.mean(axis=1)
    spread = near - centre[:, None]
    _, _, vt = np.linalg.svd(spread, full_matrices=False)
    normal = vt[:, -1]
    offset = ((points - centre) * normal).sum(axis=1, keepdims=True)
    return points - offset * normal


def register_to_surface(vertices: np.ndarray, faces: np.ndarray, surface: trimesh.Trimesh, guesses: np.ndarray | None = None,
                        guess_weight: float = 0.1, iterations: int = 3, every: int = 3) -> np.ndarray | None:
    """The mesh (vertices (N, 3), faces) deformed onto ``surface`` by non-rigid ICP (Amberg et al. 2007,
    ``backend.mesh.nricp``, trimesh's algorithm solved faster): per-vertex affine maps, stiff first and looser after, so the mesh
    follows the surface's motion as a whole instead of each vertex jumping to its nearest point.
    ``guesses``: where the canonical correspondences put each vertex (NaN: nowhere); every ``every``-th one pulls
    as a landmark with ``guess_weight`` in the stiff stages (they are noisy, so the final stage is free).
    None when the problem has no solution: edges of zero length (their stiffness weight is 1/length), or
    a part of the mesh with no landmark and no surface point within reach even at any distance.
    """
    source = trimesh.Trimesh(vertices, faces, process=False)
    w = 0.0 if guesses is None else guess_weight
    steps = [[0.01, 10 * w, 0.5, iterations], [0.02, 5 * w, 0.5, iterations], [0.03, 2.5 * w, 0.5, iterations],
             [0.01, 0.0, 0.0, iterations]]  # (stiffness, landmark weight, normal weight, iterations): the library's schedule
    landmarks = targets = None
    if guesses is not None:
        landmarks = np.arange(0, len(vertices), every)
        landmarks = landmarks[np.isfinite(guesses[landmarks]).all(axis=1)]  # NaN: no guess for that vertex
        targets = guesses[landmarks]
        if len(landmarks) == 0:
            landmarks = targets = None
    if len(surface.vertices) < 4 or np.min(source.edges_unique_length, initial=1.0) <= 1e-9:
        return None
    # a part of the mesh with no surface point within reach and no landmark leaves the system singular
    # (a frame whose reconstruction shrank): then every vertex gets a data term
    for threshold in (0.3, np.inf):
        try:
            with np.errstate(divide="ignore", invalid="ignore"):
                moved = nricp_amberg(source, surface, source_landmarks=landmarks, target_positions=targets,
                                     steps=steps, distance_threshold=threshold, use_faces=False)
        except (RuntimeError, ValueError, np.linalg.LinAlgError):
            continue
        if np.isfinite(moved).all():
            return np.asarray(moved, dtype=np.float32)
    return None


def keep_upright(start: np.ndarray, moved: np.ndarray, faces: np.ndarray, previous: np.ndarray | None = None,
                 rounds: int = 4) -> np.ndarray:
    """``moved`` with the corners of every triangle it turned over put back at ``start``.

    Turned over: against ``start`` or against ``previous`` (the last frame as shipped).
    """
    def normals(vertices: np.ndarray) -> np.ndarray:
        corners = vertices[faces]
        return np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])

    references = [normals(start)] + ([] if previous is None else [normals(previous)])
    moved = np.array(moved, copy=True)
    for _ in range(rounds):  # putting corners back can turn a neighbour over, so look again
        now = normals(moved)
        turned = np.any([(now * reference).sum(axis=1) <= 0 for reference in references], axis=0)
        if not turned.any():
            break
        corners = faces[turned].reshape(-1)
        moved[corners] = start[corners]
    return moved


def lay_onto_surface(vertices: np.ndarray, faces: np.ndarray, surface: trimesh.Trimesh,
                     previous: np.ndarray | None = None) -> np.ndarray:
    """Each vertex moved to its closest point on ``surface``, except the corners of triangles that would turn over.

    The registration is stiff and leaves the mesh a little off each frame's surface; the frame shipped lies on it
    (world seeds 1000000-2: tracked PSNR_FG +0.6 to +1.3 dB, vertex error unchanged).
    """
    closest = closest_points(surface, vertices)[0].astype(vertices.dtype)
    return keep_upright(vertices, closest, faces, previous)


class SurfaceFollower:
    """Carries a mesh from frame to frame onto each frame's surface: ``method`` "arap" (``register_arap``,
    ``stiffness`` against the surface terms) or "nricp" (``register_to_surface``).

    The registration's cost grows with the mesh, so a mesh over ``max_vertices`` is registered through
    a decimated proxy whose motion every vertex takes from its nearest proxy vertices (inverse-distance
    weights fixed at the start), as an embedded deformation graph carries a mesh.
    """

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, max_vertices: int = 1000, neighbours: int = 4,
                 guess_weight: float = 0.1, method: str = "arap", stiffness: float = 10.0, outline_weight: float = 0.0) -> None:
        self.vertices = np.asarray(vertices, dtype=np.float32)
        if method not in ("arap", "nricp"):
            raise ValueError(f"unknown registration {method!r}; choose arap or nricp")
        self.guess_weight, self.method, self.stiffness, self.outline_weight = guess_weight, method, stiffness, outline_weight
        self.failures = 0  # frames on which no registration succeeded (the mesh kept its place)
        self.rest_vertices = self.vertices.copy()
        if len(vertices) <= max_vertices:
            self.proxy, self.proxy_faces = self.vertices.copy(), np.asarray(faces)
            self.index, self.weights = np.arange(len(vertices))[:, None], np.ones((len(vertices), 1), np.float32)
            self.landmark_of = np.arange(len(vertices))
        else:
            self._decimate_proxy(vertices, faces, max_vertices, neighbours)
        self.rest_proxy = self.proxy.copy()

    def _decimate_proxy(self, vertices: np.ndarray, faces: np.ndarray, max_vertices: int, neighbours: int) -> None:
        coarse = decimate(trimesh.Trimesh(vertices, faces, process=False), 2 * max_vertices)
        self.proxy, self.proxy_faces = np.asarray(coarse.vertices, np.float32), np.asarray(coarse.faces)
        distance, self.index = cKDTree(self.proxy).query(self.vertices, k=neighbours)
        weights = 1.0 / (distance + 1e-6)
        self.weights = (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)
        self.landmark_of = cKDTree(self.vertices).query(self.proxy)[1]  # each proxy vertex's nearest mesh vertex

    def _register(self, start: np.ndarray, surface: trimesh.Trimesh, landmarks: np.ndarray | None,
                  outlines: Sequence[Outline] = ()) -> np.ndarray | None:
        """The proxy registered onto ``surface`` from ``start``; None when there is no solution."""
        if self.method == "nricp":
            return register_to_surface(start, self.proxy_faces, surface, landmarks, self.guess_weight)
        if len(surface.vertices) < 4:
            return None
        moved = register_arap(self.rest_proxy, self.proxy_faces, start, np.asarray(surface.vertices),
                              np.asarray(surface.vertex_normals), landmarks, self.guess_weight, self.stiffness,
                              outlines=outlines if self.outline_weight > 0 else (), outline_weight=self.outline_weight)
        return moved if np.isfinite(moved).all() else None

    def step(self, surface: trimesh.Trimesh, guesses: np.ndarray | None = None, outlines: Sequence[Outline] = ()) -> np.ndarray:
        """The mesh's vertices on ``surface``; ``guesses``: the canonical matches for every mesh vertex; ``outlines``: the
        footage's mattes at this frame, which the mesh's silhouettes should fill (ARAP only, with ``outline_weight``).

        If the previous frame's mesh cannot be registered (a bad frame left parts of it collapsed), the
        frame-0 shape is registered instead, so one bad frame never spoils the rest; if that fails too,
        the mesh keeps its place for this frame.
        """
        landmarks = None if guesses is None else guesses[self.landmark_of]
        for start in (self.proxy, self.rest_proxy):
            moved = self._register(start, surface, landmarks, outlines)
            if moved is not None:
                rest = self.vertices if start is self.proxy else self.rest_vertices
                self.vertices = rest + (self.weights[..., None] * (moved - start)[self.index]).sum(axis=1)
                self.proxy = moved
                return self.vertices
        self.failures += 1
        return self.vertices


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
