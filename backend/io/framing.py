"""Crop, centre and scale a monocular clip around its object, with one transform for the whole clip.

One square window covering the object in every frame (not a window per frame, which would jitter),
scaled so the object fills ``fill`` of the model's view. The transform is kept so the result can be put
back where the clip shows it: `to_source` maps model-image pixels to clip pixels and back.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Framing:
    left: float  # clip pixel at the window's left edge
    top: float
    side: float  # window side in clip pixels
    size: int  # output side in pixels

    @property
    def scale(self) -> float:
        return self.size / self.side

    def to_model(self, points: np.ndarray) -> np.ndarray:
        """Clip pixel coordinates (..., 2) as x, y -> model-image pixels."""
        return (np.asarray(points, np.float64) - [self.left, self.top]) * self.scale

    def to_source(self, points: np.ndarray) -> np.ndarray:
        return np.asarray(points, np.float64) / self.scale + [self.left, self.top]

    def to_dict(self) -> dict[str, float]:
        return {"left": self.left, "top": self.top, "side": self.side, "size": self.size}

    def apply(self, frames: np.ndarray, masks: np.ndarray, background: int = 255) -> tuple[np.ndarray, np.ndarray]:
        """(F, size, size, 3) uint8 frames with the background made white, and (F, size, size) float masks.

        Each frame is put on white at its own resolution first and then averaged down, so an output pixel the object
        covers by a share a shows a·object + (1 - a)·white, as a render anti-aliased over white does (what the models
        read). Averaging first and compositing with the averaged mask after weighed the object by a² and kept a
        share a(1 - a) of the backdrop: outlines came out paler than the object, or tinted with the room behind it."""
        out_frames, out_masks = [], []
        for frame, mask in zip(frames, masks, strict=True):
            mask = mask.astype(np.float32)
            on_white = frame.astype(np.float32) * mask[..., None] + background * (1 - mask[..., None])
            on_white, mask, matrix = self._shrunk(on_white, mask)
            alpha = cv2.warpAffine(mask, matrix, (self.size, self.size), flags=cv2.INTER_LINEAR, borderValue=0)
            rgb = cv2.warpAffine(on_white, matrix, (self.size, self.size), flags=cv2.INTER_LINEAR,
                                 borderValue=(background,) * 3)
            out_frames.append(np.clip(rgb + 0.5, 0, 255).astype(np.uint8))
            out_masks.append(alpha)
        return np.stack(out_frames), np.stack(out_masks)

    def _shrunk(self, frame: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The frame and mask averaged down to about the output's pixel size, and the affine map from them.

        warpAffine samples bilinearly whatever the flag (INTER_AREA is a resize-only mode), so a 512² clip
        framed into 64² would keep one pixel in 64 and alias; cv2.resize with INTER_AREA averages first.
        """
        scale = self.scale
        height, width = mask.shape
        if scale < 1:
            small = max(1, round(width * scale)), max(1, round(height * scale))
            frame = cv2.resize(frame, small, interpolation=cv2.INTER_AREA)
            mask = cv2.resize(mask, small, interpolation=cv2.INTER_AREA)
        sx, sy = mask.shape[1] / width, mask.shape[0] / height  # pixel centres: x_small + 0.5 = (x + 0.5) * s
        matrix = np.array([[scale / sx, 0, scale * (0.5 / sx - 0.5 - self.left)],
                           [0, scale / sy, scale * (0.5 / sy - 0.5 - self.top)]])
        return frame, mask, matrix


def frame_object(masks: np.ndarray, size: int, fill: float = 0.85) -> Framing:
    """The window around the union of all masks (F, H, W), centred on it, the object spanning ``fill`` of it."""
    union = masks.any(axis=0)
    if not union.any():
        raise ValueError("no foreground in any frame: nothing to reconstruct")
    rows, cols = np.nonzero(union)
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    side = max(bottom - top, right - left) / fill
    centre_x, centre_y = (left + right) / 2, (top + bottom) / 2
    return Framing(float(centre_x - side / 2), float(centre_y - side / 2), float(side), int(size))
