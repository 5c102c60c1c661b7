"""The footage's outline as a registration term (backend.mesh.outline): the mesh's silhouette fills the matte."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from backend.io.cameras import Camera
from backend.mesh.arap import register_arap
from backend.mesh.level import silhouette_iou as level_iou
from backend.mesh.outline import TRUSTED_IOU, Outline, trusted
from backend.render.raster import rasterize


def silhouette_iou(outline: Outline, vertices: np.ndarray, faces: np.ndarray) -> float:
    return level_iou(vertices, faces, [outline.camera], [outline.mask])


CAMERA = Camera.look_at(np.array([0.0, -3.0, 0.4]), (0.0, 0.0, 0.0), width=64, height=64)


def _matte(mesh: trimesh.Trimesh, camera: Camera = CAMERA) -> np.ndarray:
    return rasterize(torch.as_tensor(mesh.vertices, dtype=torch.float32), torch.as_tensor(mesh.faces), camera).mask.numpy()


def _sphere() -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=3, radius=0.5)


def test_a_mesh_that_fills_its_matte_stays_where_it_is() -> None:
    """The outline's pulls are satisfied where the mesh's silhouette is the matte: registered with them onto its own
    surface, the mesh moves by under half a pixel on average (1 px = 0.034 units at the sphere), no vertex leaves the
    surface by more than a pixel and a half, and it still fills the matte."""
    sphere = _sphere()
    vertices, faces = np.asarray(sphere.vertices), np.asarray(sphere.faces)
    outline = Outline(CAMERA, _matte(sphere))
    blocks, _ = outline.terms(vertices, faces)
    assert (np.abs(blocks).sum(axis=(1, 2)) > 0).sum() > 20  # the silhouette's edge is held, not left free
    moved = register_arap(vertices, faces, vertices, vertices, np.asarray(sphere.vertex_normals), stiffness=0.3,
                          outlines=[outline], outline_weight=10.0)
    assert np.linalg.norm(moved - vertices, axis=1).mean() < 0.015
    assert np.abs(np.linalg.norm(moved, axis=1) - 0.5).max() < 0.05 and silhouette_iou(outline, moved, faces) > 0.98


@pytest.mark.parametrize("stretch", [1.3, 0.75])
def test_the_registration_follows_the_footage_outline_where_the_surface_disagrees(stretch: float) -> None:
    """The surface says a sphere; the footage shows it wider (1.3) or narrower (0.75) across the view. With the outline
    term the registered mesh's silhouette fills the footage's matte far better, and a view it does not bind (from
    above, where x and y are seen) keeps the surface's depth."""
    sphere = _sphere()
    shown = sphere.copy()
    shown.apply_transform(np.diag([stretch, 1.0, 1.0, 1.0]))
    outline = Outline(CAMERA, _matte(shown))
    vertices, faces = np.asarray(sphere.vertices), np.asarray(sphere.faces)
    args = (vertices, faces, vertices, vertices, np.asarray(sphere.vertex_normals))
    without = register_arap(*args, stiffness=0.3)
    with_outline = register_arap(*args, stiffness=0.3, outlines=[outline], outline_weight=10.0)
    before, after = silhouette_iou(outline, without, faces), silhouette_iou(outline, with_outline, faces)
    assert after > before + 0.5 * (1 - before) and after > 0.9, (before, after)
    # across the view the mesh took the footage's width; along the view ray (y) the surface kept its depth
    width = np.ptp(with_outline[:, 0])
    assert abs(width - stretch) < abs(np.ptp(without[:, 0]) - stretch) * 0.5, width
    assert abs(np.ptp(with_outline[:, 1]) - 1.0) < 0.1


def test_video_sized_mattes_are_read_shrunk() -> None:
    big = CAMERA.resized(640, 640)
    outline = Outline(big, np.ones((640, 640), bool))
    assert max(outline.camera.width, outline.camera.height) <= 128 and outline.mask.shape == (outline.camera.height, outline.camera.width)
    with pytest.raises(ValueError, match="matte"):
        Outline(CAMERA, np.ones((32, 64), bool))


def test_a_surface_far_from_the_outline_is_not_pulled_onto_it() -> None:
    """A frame's surface that outlines the matte well gets the outline's pulls; one far from it (half as wide as the
    footage shows: a reconstruction too poor to trust) gets none."""
    sphere = _sphere()
    vertices, faces = np.asarray(sphere.vertices), np.asarray(sphere.faces)
    near, far = sphere.copy(), sphere.copy()
    near.apply_transform(np.diag([1.05, 1.0, 1.0, 1.0]))
    far.apply_transform(np.diag([2.0, 1.0, 1.0, 1.0]))
    assert silhouette_iou(Outline(CAMERA, _matte(far)), vertices, faces) < TRUSTED_IOU
    assert len(trusted([Outline(CAMERA, _matte(near))], vertices, faces)) == 1
    assert trusted([Outline(CAMERA, _matte(far))], vertices, faces) == []


def test_hold_weighs_only_the_pull_that_holds_the_edge() -> None:
    """``hold`` scales the pull holding the mesh's edge on the matte's edge; a vertex outside the matte is pulled in
    at full weight whatever the hold."""
    sphere = _sphere()
    vertices, faces = np.asarray(sphere.vertices), np.asarray(sphere.faces)
    wider = vertices * [1.15, 1.0, 1.0]  # its sides project outside the sphere's matte
    matte = _matte(sphere)
    full, _ = Outline(CAMERA, matte).terms(wider, faces)
    light, _ = Outline(CAMERA, matte, hold=0.3).terms(wider, faces)
    outside = Outline(CAMERA, matte)._outside
    uv, _ = CAMERA.project(wider)
    out = outside[np.clip(uv[:, 1].astype(int), 0, 63), np.clip(uv[:, 0].astype(int), 0, 63)] > 1.0
    assert out.sum() > 10
    np.testing.assert_allclose(light[out], full[out])
    changed = np.abs(full - light).sum(axis=(1, 2)) > 1e-9
    assert changed.sum() > 10 and not (changed & out).any()
    trace_full, trace_light = np.trace(full[changed], axis1=1, axis2=2), np.trace(light[changed], axis1=1, axis2=2)
    assert (trace_light < trace_full).all()
