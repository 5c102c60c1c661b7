"""The moving object's mask in each frame, without downloaded weights.

In order of preference: masks the user gives; the clip's own alpha; for a plain background (a border of
one colour), the distance from that colour with morphological clean-up; otherwise OpenCV's GrabCut,
seeded from a centred box. Every path keeps the largest connected component.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

BORDER = 4  # pixels of the frame's edge that sample the background
PLAIN_BACKGROUND_STD = 12.0  # a border this uniform (per channel, 0-255) is a plain background
PLAIN_DISTANCE = 40.0  # colour distance from the background that counts as foreground


@dataclass
class Matte:
    masks: np.ndarray  # (F, H, W) bool
    method: str  # "user", "alpha", "plain", "grabcut"


def border_pixels(frames: np.ndarray) -> np.ndarray:
    top, bottom = frames[:, :BORDER].reshape(-1, 3), frames[:, -BORDER:].reshape(-1, 3)
    left, right = frames[:, :, :BORDER].reshape(-1, 3), frames[:, :, -BORDER:].reshape(-1, 3)
    return np.concatenate([top, bottom, left, right]).astype(np.float32)


def foreground(frames: np.ndarray, alpha: np.ndarray | None = None, user_masks: np.ndarray | None = None) -> Matte:
    """Masks for uint8 frames (F, H, W, 3)."""
    if user_masks is not None:
        if user_masks.shape[:3] != frames.shape[:3]:
            raise ValueError(f"mask clip is {user_masks.shape[:3]}, the footage {frames.shape[:3]}")
        masks = user_masks[..., 0] if user_masks.ndim == 4 else user_masks
        return Matte(np.stack([largest_component(m > (127 if masks.dtype == np.uint8 else 0.5)) for m in masks]), "user")
    if alpha is not None:
        return Matte(np.stack([largest_component(a > 0.5) for a in alpha]), "alpha")
    border = border_pixels(frames)
    if border.std(axis=0).max() < PLAIN_BACKGROUND_STD:
        return Matte(plain_background(frames, np.median(border, axis=0)), "plain")
    return Matte(np.stack([grabcut(f) for f in frames]), "grabcut")


def plain_background(frames: np.ndarray, colour: np.ndarray) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    masks = []
    for frame in frames:
        mask = (np.linalg.norm(frame.astype(np.float32) - colour, axis=-1) > PLAIN_DISTANCE).astype(np.uint8)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
        masks.append(largest_component(fill_holes(mask.astype(bool))))
    return np.stack(masks)


def grabcut(frame: np.ndarray, margin: float = 0.08, iterations: int = 4) -> np.ndarray:
    h, w = frame.shape[:2]
    rect = (int(w * margin), int(h * margin), int(w * (1 - 2 * margin)), int(h * (1 - 2 * margin)))
    mask = np.zeros((h, w), np.uint8)
    background, foreground_model = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(np.ascontiguousarray(frame[..., ::-1]), mask, rect, background, foreground_model, iterations,
                cv2.GC_INIT_WITH_RECT)
    return largest_component((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD))


def largest_component(mask: np.ndarray) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return mask.astype(bool)
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Background regions not connected to the border are holes in the object: fill them."""
    inverse = (~mask).astype(np.uint8)
    _count, labels = cv2.connectedComponents(inverse, connectivity=4)
    edge = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])))
    holes = ~np.isin(labels, list(edge)) & (labels > 0)
    return mask | holes


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0
