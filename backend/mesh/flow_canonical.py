"""Canonical coordinates carried along the footage by dense optical flow, one map per real camera view.

At frame 0 each pixel of a view holds the canonical coordinate (the frame-0 position) of the mesh
point it sees: the frame-0 mesh rasterised with its own vertex positions as the attribute. From
frame to frame each pixel's origin, the frame-0 pixel it came from, follows the footage's motion
(OpenCV Farneback flow, backward from the new frame to the previous one) at sub-pixel precision, so
motions under half a pixel a frame add up; its canonical coordinate is then read at that origin with
a nearest lookup, so coordinates never blend across parts. Pixels that just came into view take their
nearest carried neighbour's origin. At any frame these coordinates, paired with the positions of the
frame's reconstructed surface seen through the same pixels, give surface samples with known canonical
coordinates, where the footage itself says where each point went.

Only views that are real footage can be carried this way (a monocular job's generated views are
held still between keyframes); the learned canonical field covers what they do not see.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
import trimesh
from scipy import ndimage
from scipy.spatial import cKDTree

from backend.io.cameras import Camera
from backend.io.optical_flow import dense_flow, not_white
from backend.mesh.track import track_vertices
from backend.render.raster import interpolate, rasterize

FLOW_WINDOW = 21  # Farneback averaging window (pixels): wide, because small low-texture parts give little to match
# footage is followed at most this many pixels along a side (video-sized footage is shrunk first): the carried
# maps only sample the surface, and Farneback plus the per-frame rasters at 1080p cost seconds a view a frame
FLOW_SIDE = 512
OBSERVED_FRACTION = 0.03  # a vertex with a footage sample this close in canonical space (of the mesh's size) was seen


def surface_map(vertices: np.ndarray, faces: np.ndarray, attribute: np.ndarray, camera: Camera) -> np.ndarray:
    """Per-vertex ``attribute`` (N, 3) interpolated over the mesh as ``camera`` sees it (H, W, 3); NaN where empty."""
    faces_t = torch.as_tensor(faces, dtype=torch.long)
    fragments = rasterize(torch.as_tensor(vertices, dtype=torch.float32), faces_t, camera)
    values = interpolate(torch.as_tensor(attribute, dtype=torch.float32), faces_t, fragments).numpy()
    values[~fragments.mask.numpy()] = np.nan
    return values


def carry(previous: np.ndarray, backward: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """A per-pixel field (H, W, C; NaN = empty) one frame on: each pixel of the new frame looks up, bilinearly,
    where it was. Pixels outside ``seen`` (the new frame's foreground) are empty; seen pixels with nothing to look
    up (they just came into view) take their nearest carried neighbour's value (left empty
    they measured worse: the carried region then only ever shrinks)."""
    h, w = seen.shape
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    source = np.nan_to_num(previous, nan=np.inf).astype(np.float32)
    out = cv2.remap(source, grid_x + backward[..., 0], grid_y + backward[..., 1], cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_CONSTANT, borderValue=np.inf)
    out = out.reshape(h, w, -1)
    valid = np.isfinite(out).all(axis=-1)
    if not valid.any():
        return np.full((h, w, out.shape[-1]), np.nan, np.float32)
    if not valid.all():
        index = ndimage.distance_transform_edt(~valid, return_distances=False, return_indices=True)
        out = out[index[0], index[1]]
    out[~seen | ~np.isfinite(out).all(axis=-1)] = np.nan
    return out


class FlowCanonical:
    """Canonical maps for the real views of a clip, carried frame by frame as the tracking asks for them."""

    def __init__(self, frames: np.ndarray, cameras: Sequence[Camera], views: Sequence[int], vertices: np.ndarray,
                 faces: np.ndarray) -> None:
        """frames: (V, F, H, W, 3) uint8 over white; ``views``: the indices of the views that are real footage;
        vertices, faces: the frame-0 mesh, whose positions are the canonical coordinates."""
        self.frames, self.views = frames, list(views)
        height, width = frames.shape[2:4]
        small = cameras[0].resized(width, height).at_most(FLOW_SIDE)  # every view's footage has one size
        width, height = self.size = (small.width, small.height)
        self.cameras = {v: cameras[v].resized(width, height) for v in self.views}
        self.frame = 0
        # per view: the frame-0 canonical map, and for each pixel now, the frame-0 pixel it came from (sub-pixel,
        # so that motions under half a pixel a frame add up instead of rounding away)
        self.rest_maps, self.origins = {}, {}
        grid = np.stack(np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)), axis=-1)
        for v in self.views:
            rest = surface_map(vertices, faces, vertices, self.cameras[v])
            rest[~not_white(self.footage(v, 0))] = np.nan
            self.rest_maps[v] = rest
            self.origins[v] = np.where(np.isfinite(rest).all(axis=-1, keepdims=True), grid, np.nan)

    def advance_to(self, frame: int) -> None:
        """Carry the maps forward to ``frame`` (frames only ever advance)."""
        for f in range(self.frame + 1, frame + 1):
            for v in self.views:
                now = self.footage(v, f)
                backward = dense_flow(now, self.footage(v, f - 1), FLOW_WINDOW)
                self.origins[v] = carry(self.origins[v], backward, not_white(now))
        self.frame = max(self.frame, frame)

    def footage(self, view: int, frame: int) -> np.ndarray:
        """The footage of ``view`` at ``frame``, at the size it is followed at (area-averaged when shrunk)."""
        image = self.frames[view, frame]
        if image.shape[1::-1] == self.size:
            return image
        return cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)

    def canonical_map(self, view: int) -> np.ndarray:
        """The canonical coordinates (H, W, 3; NaN = empty) the footage of ``view`` sees at the current frame."""
        origin = self.origins[view]
        seen = np.isfinite(origin).all(axis=-1)
        out = np.full((*origin.shape[:2], 3), np.nan, np.float32)
        h, w = seen.shape
        x = np.clip(np.rint(origin[seen, 0]), 0, w - 1).astype(int)
        y = np.clip(np.rint(origin[seen, 1]), 0, h - 1).astype(int)
        out[seen] = self.rest_maps[view][y, x]
        return out

    def samples(self, surface: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray]:
        """Points of ``surface`` (the current frame's reconstruction) that the real views see, and their carried
        canonical coordinates: (P, 3) positions, (P, 3) canonical."""
        positions, canonical = [], []
        vertices, faces = np.asarray(surface.vertices, np.float32), np.asarray(surface.faces)
        for v in self.views:
            seen = surface_map(vertices, faces, vertices, self.cameras[v])
            carried = self.canonical_map(v)
            both = np.isfinite(seen).all(axis=-1) & np.isfinite(carried).all(axis=-1)
            positions.append(seen[both])
            canonical.append(carried[both])
        return np.concatenate(positions), np.concatenate(canonical)

    def matches(self, surface: trimesh.Trimesh, rest: np.ndarray, learned: np.ndarray) -> np.ndarray:
        """Each vertex's position on ``surface``: from the carried maps where the footage saw its canonical
        neighbourhood at this frame, from ``learned`` (the learned field's matches) elsewhere.
        rest: the vertices' canonical coordinates (their frame-0 positions)."""
        positions, canonical = self.samples(surface)
        if len(positions) < 4:
            return learned
        reach = OBSERVED_FRACTION * float(np.linalg.norm(np.ptp(rest, axis=0)))
        seen = cKDTree(canonical).query(rest, distance_upper_bound=reach)[0] < reach
        out = learned.copy()
        out[seen] = track_vertices(rest[seen], positions, canonical)
        return out
