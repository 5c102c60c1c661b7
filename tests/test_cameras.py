"""Our camera model against real Blender: projections, conversions and Plücker rays."""

import zlib

import numpy as np
import pytest

from backend.io.cameras import Camera, ring_cameras

bpy = pytest.importorskip("bpy")
from bpy_extras.object_utils import world_to_camera_view  # noqa: E402
from mathutils import Euler, Matrix, Vector  # noqa: E402


def _blender_camera(rng: np.random.Generator, width: int, height: int, fit: str):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.render.resolution_percentage = 100
    data = bpy.data.cameras.new("cam")
    data.lens = rng.uniform(18, 85)
    data.sensor_width = rng.uniform(20, 40)
    data.sensor_height = rng.uniform(15, 30)
    data.sensor_fit = fit
    data.shift_x, data.shift_y = rng.uniform(-0.3, 0.3, size=2)
    obj = bpy.data.objects.new("cam", data)
    scene.collection.objects.link(obj)
    obj.location = Vector(rng.uniform(-5, 5, size=3))
    obj.rotation_euler = Euler(rng.uniform(-np.pi, np.pi, size=3))
    obj.scale = Vector(rng.uniform(0.5, 2.0, size=3))  # Blender ignores camera scale; so must we
    scene.camera = obj
    bpy.context.view_layer.update()
    return scene, obj


def _ours(obj, width: int, height: int) -> Camera:
    d = obj.data
    return Camera.from_blender(
        np.array(obj.matrix_world), d.lens, d.sensor_width, d.sensor_height, d.sensor_fit,
        d.shift_x, d.shift_y, width, height,
    )


@pytest.mark.parametrize("fit", ["AUTO", "HORIZONTAL", "VERTICAL"])
@pytest.mark.parametrize("size", [(320, 240), (240, 320), (128, 128)])
def test_projection_matches_blender(fit: str, size: tuple[int, int]) -> None:
    rng = np.random.default_rng(zlib.crc32(repr((fit, size)).encode()))  # hash() of a str changes every run
    for _ in range(3):
        scene, obj = _blender_camera(rng, *size, fit)
        cam = _ours(obj, *size)
        # random points inside the view (Blender projects in float32, so far-off-screen points
        # carry its rounding, not ours; inside the view that rounding reaches ~1e-5 of the frame, seen on 1 camera
        # in a few hundred: 3e-5 is 0.01 px at 320, far below any real mistake such as half a pixel's offset)
        z = rng.uniform(0.5, 6, 200)
        local = np.column_stack([rng.uniform(-0.4, 0.4, 200) * z, rng.uniform(-0.4, 0.4, 200) * z, -z])
        points = np.array([obj.matrix_world @ Vector(p) for p in local])
        uv, depth = cam.project(points)
        width, height = size
        expected = np.array([tuple(world_to_camera_view(scene, obj, Vector(p))) for p in points])
        np.testing.assert_allclose(uv[:, 0] / width, expected[:, 0], atol=3e-5)
        np.testing.assert_allclose(1.0 - uv[:, 1] / height, expected[:, 1], atol=3e-5)
        np.testing.assert_allclose(depth, expected[:, 2], atol=1e-5)


def test_to_blender_round_trip() -> None:
    rng = np.random.default_rng(3)
    for cam in ring_cameras(4, rng, size=96):
        cam = Camera(cam.K + np.array([[0, 0, 3.0], [0, 0, -5.0], [0, 0, 0]]), cam.world_to_camera, 96, 96)
        bl = cam.to_blender()
        back = Camera.from_blender(
            bl["matrix_world"], bl["lens"], bl["sensor_width"], 24.0, bl["sensor_fit"],
            bl["shift_x"], bl["shift_y"], bl["width"], bl["height"],
        )
        np.testing.assert_allclose(back.K, cam.K, atol=1e-9)
        np.testing.assert_allclose(back.world_to_camera, cam.world_to_camera, atol=1e-9)


def test_blender_camera_built_from_ours_projects_the_same() -> None:
    """Ours -> Blender object -> Blender's own projection agrees with ours."""
    rng = np.random.default_rng(11)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    cam = ring_cameras(1, rng, size=160)[0]
    cam = Camera(cam.K + np.array([[0, 0, 7.0], [0, 0, 4.0], [0, 0, 0]]), cam.world_to_camera, 160, 120)
    bl = cam.to_blender()
    data = bpy.data.cameras.new("c")
    data.lens, data.sensor_width, data.sensor_fit = bl["lens"], bl["sensor_width"], bl["sensor_fit"]
    data.shift_x, data.shift_y = bl["shift_x"], bl["shift_y"]
    obj = bpy.data.objects.new("c", data)
    scene.collection.objects.link(obj)
    obj.matrix_world = Matrix(bl["matrix_world"].tolist())
    scene.render.resolution_x, scene.render.resolution_y = 160, 120
    scene.render.resolution_percentage = 100
    bpy.context.view_layer.update()
    points = rng.uniform(-0.8, 0.8, size=(100, 3))
    uv, depth = cam.project(points)
    expected = np.array([tuple(world_to_camera_view(scene, obj, Vector(p))) for p in points])
    np.testing.assert_allclose(uv[:, 0] / 160, expected[:, 0], atol=1e-5)
    np.testing.assert_allclose(1 - uv[:, 1] / 120, expected[:, 1], atol=1e-5)
    np.testing.assert_allclose(depth, expected[:, 2], atol=1e-5)


def test_plucker_rays_pass_through_their_pixels() -> None:
    cam = ring_cameras(1, np.random.default_rng(0), size=32)[0]
    rays = cam.plucker()
    assert rays.shape == (6, 32, 32)
    d, m = rays[:3].reshape(3, -1).T, rays[3:].reshape(3, -1).T
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.sum(d * m, axis=1), 0.0, atol=1e-5)  # moment is orthogonal to d
    # a point along each ray projects back onto that ray's pixel centre
    uv, depth = cam.project(cam.center + 2.0 * d.astype(np.float64))
    grid = np.stack(np.meshgrid(np.arange(32) + 0.5, np.arange(32) + 0.5), -1).reshape(-1, 2)
    np.testing.assert_allclose(uv, grid, atol=1e-4)
    assert np.all(depth > 0)


def test_camera_rejects_non_rigid_pose() -> None:
    with pytest.raises(ValueError):
        Camera(np.eye(3), np.diag([2.0, 1, 1, 1]), 8, 8)


def test_a_video_sized_camera_shrinks_to_a_side_and_sees_the_same() -> None:
    """``at_most``: a 1920x1080 camera made at most 512 a side is 512x288, and every point lands where it did,
    scaled with the image; a camera already that small is itself."""
    camera = Camera.look_at(np.array([3.0, -2.0, 1.0]), (0, 0, 0), width=1920, height=1080)
    small = camera.at_most(512)
    assert (small.width, small.height) == (512, 288)
    points = np.random.default_rng(0).uniform(-0.5, 0.5, size=(50, 3))
    np.testing.assert_allclose(small.project(points)[0], camera.project(points)[0] * (512 / 1920), atol=1e-6)
    assert small.at_most(512) is small
