"""Photometric refinement: a textured mesh that slides along its own surface comes back to its place."""

import numpy as np
import torch
import trimesh

from backend.io.cameras import ring_cameras
from backend.mesh.photometric import PhotometricRefiner
from backend.mesh.projection import Footage
from backend.render.raster import interpolate, rasterize


def striped(points: np.ndarray) -> np.ndarray:
    """Colours that change around the z axis: a sphere turning about z shows it only through them."""
    angle = np.arctan2(points[:, 1], points[:, 0])
    return np.stack([0.5 + 0.4 * np.sin(6 * angle), 0.5 + 0.4 * np.cos(4 * angle), 0.5 + 0.3 * np.sin(3 * angle + 1)], 1)


def film(vertices: np.ndarray, faces: np.ndarray, colours: np.ndarray, cameras) -> np.ndarray:
    frames = []
    faces_t = torch.as_tensor(faces, dtype=torch.long)
    for camera in cameras:
        fragments = rasterize(torch.as_tensor(vertices, dtype=torch.float32), faces_t, camera)
        rgb = interpolate(torch.as_tensor(colours, dtype=torch.float32), faces_t, fragments)
        mask = fragments.mask[..., None].float()
        frames.append(((rgb * mask + 1 - mask).numpy() * 255 + 0.5).astype(np.uint8))
    return np.stack(frames)


def turned(vertices: np.ndarray, degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    rotation = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    return vertices @ rotation.T


def test_a_turning_sphere_the_surface_cannot_show_is_found_from_its_footage() -> None:
    """The registration onto a turning sphere's surface leaves the mesh still (the surface looks the same);
    the footage of its stripes says how far it turned, and refinement recovers most of it."""
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    rest, faces = np.asarray(sphere.vertices, dtype=np.float32), np.asarray(sphere.faces)
    colours = striped(rest)
    cameras = ring_cameras(4, np.random.default_rng(2), elevation_deg=(-15.0, 15.0), size=64)
    truth = turned(rest, 4.0).astype(np.float32)
    refiner = PhotometricRefiner(rest, faces, Footage(cameras, film(rest, faces, colours, cameras)))
    refined = refiner.refine(rest, Footage(cameras, film(truth, faces, colours, cameras)))
    before = np.linalg.norm(rest - truth, axis=1)
    after = np.linalg.norm(refined - truth, axis=1)
    assert after.mean() < 0.5 * before.mean(), (before.mean(), after.mean())
    np.testing.assert_allclose(np.linalg.norm(refined, axis=1), 0.5, atol=0.01)  # it slid, it did not leave the surface


def test_footage_that_agrees_with_the_mesh_leaves_it_in_place() -> None:
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    rest, faces = np.asarray(sphere.vertices, dtype=np.float32), np.asarray(sphere.faces)
    cameras = ring_cameras(4, np.random.default_rng(2), elevation_deg=(-15.0, 15.0), size=64)
    footage = Footage(cameras, film(rest, faces, striped(rest), cameras))
    refined = PhotometricRefiner(rest, faces, footage).refine(rest, footage)
    moved = np.linalg.norm(refined - rest, axis=1)
    turn = np.linalg.norm(turned(rest, 4.0) - rest, axis=1)  # the motion the other test recovers
    # pixel-sampling noise in the reference colours leaves sub-pixel wobble (a pixel is 0.023 here), no drift
    assert moved.mean() < 0.2 * turn.mean() and np.percentile(moved, 95) < 0.025, (moved.mean(), turn.mean())

