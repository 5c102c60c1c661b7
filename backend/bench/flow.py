"""Image-space frame interpolation with classical optical flow (OpenCV Farneback).

The `image_flow` baseline of `bench interp`: a stand-in for FILM-style interpolators, which
need downloaded weights. Warps both keyframes toward time α and blends them.
"""

from __future__ import annotations

import cv2
import numpy as np

from backend.mesh.flow_canonical import dense_flow


def _warp(image: np.ndarray, flow: np.ndarray, scale: float) -> np.ndarray:
    h, w = image.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image, grid_x - scale * flow[..., 0], grid_y - scale * flow[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def interpolate_frame(first: np.ndarray, second: np.ndarray, alpha: float) -> np.ndarray:
    """uint8 RGB frame at time alpha between ``first`` (0) and ``second`` (1)."""
    forward = dense_flow(first, second, window=9)
    backward = dense_flow(second, first, window=9)
    from_first = _warp(first, forward, alpha).astype(np.float32)
    from_second = _warp(second, backward, 1 - alpha).astype(np.float32)
    return np.clip((1 - alpha) * from_first + alpha * from_second + 0.5, 0, 255).astype(np.uint8)
