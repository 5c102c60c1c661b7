"""Cluttered backdrops for footage that is not filmed over a plain wall: a wall lit unevenly, furniture-like
blocks and discs of any colour, a fine texture, and a camera's noise. Used to judge the matte (``bench matte``),
never to train."""

from __future__ import annotations

import cv2
import numpy as np


def cluttered_backdrop(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """(H, W, 3) float32 in [0, 255]."""
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    image = np.ones((height, width, 3)) * rng.uniform(60, 200, 3)
    image *= (0.8 + 0.4 * (rng.uniform(-1, 1) * xx + rng.uniform(-1, 1) * yy))[..., None]
    for _ in range(rng.integers(10, 22)):
        colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
        x, y = int(rng.uniform(-0.1, 1) * width), int(rng.uniform(-0.1, 1) * height)
        if rng.random() < 0.6:
            corner = (x + int(rng.uniform(0.05, 0.5) * width), y + int(rng.uniform(0.05, 0.5) * height))
            cv2.rectangle(image, (x, y), corner, colour, -1)
        else:
            axes = (int(rng.uniform(0.03, 0.25) * width), int(rng.uniform(0.03, 0.25) * height))
            cv2.ellipse(image, (x, y), axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
    texture = cv2.GaussianBlur(rng.normal(0, 1, (height, width, 3)), (0, 0), float(rng.uniform(0.8, 3)))
    return (image + texture * rng.uniform(8, 25)).clip(0, 255).astype(np.float32)


def over_backdrop(rgb: np.ndarray, alpha: np.ndarray, rng: np.random.Generator, shake: float = 0.0,
                  pan: float = 0.0) -> np.ndarray:
    """Frames (F, H, W, 3) in [0, 255] with coverage (F, H, W) filmed over a cluttered backdrop, as uint8: the
    backdrop shifted by up to ``shake`` pixels a frame (a hand-held camera) and ``pan`` pixels more every frame (a
    panning one), with a camera's noise and exposure flicker."""
    frames, height, width = alpha.shape
    pad = int(np.ceil(shake + pan * frames)) + 1
    backdrop = cluttered_backdrop(rng, height + 2 * pad, width + 2 * pad)
    out = []
    for index in range(frames):
        dx, dy = rng.uniform(-shake, shake, 2) if shake else (0.0, 0.0)
        shift = np.float32([[1, 0, pad + dx - pad * (pan > 0) + pan * index], [0, 1, pad + dy]])
        behind = cv2.warpAffine(backdrop, shift, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        cover = alpha[index][..., None]
        frame = (rgb[index] * cover + behind * (1 - cover)) * (1 + rng.normal(0, 0.01)) + rng.normal(0, 2, rgb.shape[1:])
        out.append(frame.clip(0, 255).round().astype(np.uint8))
    return np.stack(out)
