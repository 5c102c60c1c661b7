"""The mesh's iso-level is the one whose silhouettes match the footage mattes."""

import numpy as np
import torch
import trimesh

from backend.io.cameras import Camera
from backend.mesh.extract import density_grid
from backend.mesh.level import DEFAULT_LEVEL, choose_level, silhouette_iou
from backend.render.raster import rasterize


def soft_ball(points: torch.Tensor) -> torch.Tensor:
    """Density falling linearly with the radius: level L is the sphere of radius 0.8 - L / 40."""
    return 40.0 * (0.8 - points.norm(dim=-1))


def footage_cameras() -> list[Camera]:
    eyes = [(2.6, 0.0, 0.8), (0.0, 2.6, 0.4), (-1.8, -1.8, 1.2)]
    return [Camera.look_at(np.array(eye), (0.0, 0.0, 0.0), width=64, height=64) for eye in eyes]


def outlines(mesh: trimesh.Trimesh, cameras: list[Camera]) -> list[np.ndarray]:
    vertices, faces = torch.as_tensor(mesh.vertices, dtype=torch.float32), torch.as_tensor(mesh.faces)
    return [rasterize(vertices, faces, camera).mask.numpy() for camera in cameras]


def test_the_level_whose_outline_matches_the_mattes_wins():
    grid = density_grid(soft_ball, 64, 1.0)
    cameras = footage_cameras()
    for radius, expected in ((0.5, 12.0), (0.6, 8.0), (0.3, 20.0)):
        masks = outlines(trimesh.creation.icosphere(subdivisions=4, radius=radius), cameras)
        choice = choose_level(grid, 1.0, cameras, masks)
        assert choice.level == expected, (radius, choice.scores)
        assert choice.scores[expected] > 0.95
        assert min(choice.scores.values()) < 0.8  # the candidates really differ: the choice is not a tie


def test_without_mattes_or_surface_the_default_level_stays():
    grid = density_grid(soft_ball, 32, 1.0)
    assert choose_level(grid, 1.0, [], []).level == DEFAULT_LEVEL
    cameras = footage_cameras()
    masks = [np.ones((64, 64), bool) for _ in cameras]
    assert choose_level(np.zeros((32, 32, 32), np.float32), 1.0, cameras, masks).level == DEFAULT_LEVEL


def test_silhouette_iou_of_a_mesh_with_its_own_outline_is_one():
    ball = trimesh.creation.icosphere(subdivisions=3, radius=0.4)
    cameras = footage_cameras()
    masks = outlines(ball, cameras)
    assert silhouette_iou(ball.vertices, ball.faces, cameras, masks) == 1.0
    assert silhouette_iou(ball.vertices * 1.5, ball.faces, cameras, masks) < 0.6


def test_of_outlines_alike_the_lowest_level_is_kept():
    """A steep density (level L: radius 0.5 - L / 20000) makes every candidate's outline all but the same; the mattes
    are the level-16 sphere's. The best IoU is a hair above the rest, but the lowest level within LEVEL_MARGIN is
    kept: a higher level carves a real surface where its density dips."""
    from backend.mesh.level import LEVEL_MARGIN

    grid = density_grid(lambda p: 20000.0 * (0.5 - p.norm(dim=-1)), 64, 1.0)
    cameras = footage_cameras()
    masks = outlines(trimesh.creation.icosphere(subdivisions=4, radius=0.5 - 16 / 20000), cameras)
    choice = choose_level(grid, 1.0, cameras, masks)
    best = max(choice.scores, key=choice.scores.__getitem__)
    assert best != 3.0 and choice.scores[best] - choice.scores[3.0] < LEVEL_MARGIN, choice.scores
    assert choice.level == 3.0
