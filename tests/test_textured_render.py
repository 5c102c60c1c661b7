"""The textured-mesh renderer that judges tracked meshes: anti-aliased outlines when asked."""

import numpy as np

from backend.io.cameras import Camera
from backend.render.textured import render_textured


def _black_triangle() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, Camera]:
    camera = Camera.look_at(np.array([0.0, -3.0, 0.0]), (0.0, 0.0, 0.0), width=24, height=24)
    vertices = np.array([[-0.61, 0.0, -0.53], [0.67, 0.0, -0.41], [0.07, 0.0, 0.71]], dtype=np.float32)
    uvs = np.array([[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]], dtype=np.float32)
    return vertices, np.array([[0, 1, 2]]), uvs, np.zeros((8, 8, 3), np.uint8), camera


def _projected_area(vertices: np.ndarray, camera: Camera) -> float:
    projected = np.c_[vertices, np.ones(len(vertices))] @ camera.projection().T
    xy = projected[:, :2] / projected[:, 2:]
    (x0, y0), (x1, y1), (x2, y2) = xy
    return abs((x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)) / 2


def test_supersampling_blends_the_outline_and_matches_the_true_covered_area() -> None:
    vertices, faces, uvs, texture, camera = _black_triangle()
    area = _projected_area(vertices, camera)
    aliased = render_textured(vertices, faces, uvs, texture, camera)
    smooth = render_textured(vertices, faces, uvs, texture, camera, supersample=4)
    assert smooth.shape == aliased.shape == (24, 24, 3)
    # one sample a pixel: every pixel is all triangle or all background
    assert np.isin(np.round(aliased, 6), (0.0, 1.0)).all()
    # four a side: the slanted edges' pixels are partly covered, and the coverage adds up to the true area
    partial = (smooth[..., 0] > 0.01) & (smooth[..., 0] < 0.99)
    assert partial.sum() >= 20
    coverage = float((1 - smooth[..., 0]).sum())
    assert abs(coverage - area) < 0.03 * area
    assert abs(coverage - area) < abs(float((1 - aliased[..., 0]).sum()) - area)
