"""Canonical maps carried by optical flow along rendered footage: they follow the motion."""

import numpy as np
import trimesh
from PIL import Image
from scipy import ndimage

from backend.io.cameras import ring_cameras
from backend.mesh.flow_canonical import FlowCanonical, surface_map
from backend.render.textured import render_textured
from backend.world import make_object
from backend.world.render import render_clip


def textured_card(camera, cells: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A square facing ``camera`` through the origin: vertices, faces, uvs and a noise texture."""
    right, up = camera.world_to_camera[0, :3], camera.world_to_camera[1, :3]
    a, b = np.meshgrid(np.linspace(-0.5, 0.5, cells + 1), np.linspace(-0.5, 0.5, cells + 1))
    vertices = a.reshape(-1, 1) * right + b.reshape(-1, 1) * up
    index = np.arange((cells + 1) ** 2).reshape(cells + 1, cells + 1)
    corners = index[:-1, :-1].ravel(), index[:-1, 1:].ravel(), index[1:, 1:].ravel(), index[1:, :-1].ravel()
    faces = np.concatenate([np.stack(corners[:3], 1), np.stack([corners[0], corners[2], corners[3]], 1)])
    uvs = np.stack([a.ravel() + 0.5, b.ravel() + 0.5], 1)
    noise = np.random.default_rng(0).integers(0, 200, (16, 16, 3)).astype(np.uint8)
    texture = np.array(Image.fromarray(noise).resize((128, 128), Image.Resampling.BICUBIC))
    return vertices, faces, uvs, texture


def test_slow_motion_adds_up_instead_of_rounding_away() -> None:
    """A textured card slides 0.3 px a frame for 12 frames: the carried maps must follow it (a map resampled
    to the nearest pixel every frame would not move at all)."""
    camera = ring_cameras(1, np.random.default_rng(2), size=64)[0]
    rest, faces, uvs, texture = textured_card(camera)
    step = 0.3 * np.linalg.norm(camera.center) / camera.K[0, 0] * camera.world_to_camera[0, :3]  # 0.3 px
    poses = [rest + f * step for f in range(13)]
    footage = np.stack([(render_textured(p, faces, uvs, texture, camera) * 255).round().astype(np.uint8) for p in poses])
    flow = FlowCanonical(footage[None], [camera], [0], rest, faces)
    flow.advance_to(12)
    truth = surface_map(poses[-1], faces, rest, camera)
    still = surface_map(poses[-1], faces, poses[-1], camera)  # no tracking: a point's canonical is where it is
    carried = flow.canonical_map(0)
    inner = np.isfinite(truth).all(-1) & np.isfinite(carried).all(-1)
    inner = ndimage.binary_erosion(inner, iterations=3)  # away from the card's edges
    pixel = np.linalg.norm(step) / 0.3
    carried_error = np.linalg.norm(carried[inner] - truth[inner], axis=-1).mean() / pixel
    still_error = np.linalg.norm(still[inner] - truth[inner], axis=-1).mean() / pixel
    assert still_error > 3.5  # 3.6 px of motion
    assert carried_error < 1.0, (carried_error, still_error)


def test_samples_pair_the_current_surface_with_carried_coordinates() -> None:
    obj = make_object(5)
    cameras = ring_cameras(3, np.random.default_rng(1), size=48)
    footage = render_clip(obj, cameras, np.array([0.0, 0.05]), supersample=1)
    rest = obj.vertices_at(0.0)
    flow = FlowCanonical(footage.composite(), cameras, [0, 2], rest, obj.faces)  # view 1 is not footage

    positions, canonical = flow.samples(trimesh.Trimesh(rest, obj.faces, process=False))
    assert len(positions) > 200 and np.isfinite(positions).all() and np.isfinite(canonical).all()
    np.testing.assert_allclose(canonical, positions, atol=1e-4)  # at frame 0 the canonical coordinate is the position
    assert set(flow.origins) == {0, 2}
    # vertices the footage saw take their match from it (at frame 0: where they are); the rest keep the learned one
    matched = flow.matches(trimesh.Trimesh(rest, obj.faces, process=False), rest, np.full_like(rest, np.nan))
    seen = np.isfinite(matched).all(axis=1)
    assert 0.2 < seen.mean() < 1.0
    diagonal = np.linalg.norm(np.ptp(rest, axis=0))
    assert np.linalg.norm(matched[seen] - rest[seen], axis=1).mean() < 0.01 * diagonal
