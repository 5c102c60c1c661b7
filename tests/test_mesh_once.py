"""Mesh once: extraction, cleanup, decimation, UV atlas (crash-isolated) and texture bake."""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import trimesh

from backend.io.cameras import Camera, ring_cameras
from backend.mesh.extract import EmptyFieldError, decimate, density_grid, extract_mesh
from backend.mesh.projection import Footage
from backend.mesh.texture import bake, texel_surface
from backend.mesh.uv import unwrap
from backend.render.textured import render_textured

RADIUS = 0.5


def sphere_density(points: torch.Tensor) -> torch.Tensor:
    return 10.0 * torch.sigmoid(40 * (RADIUS - points.norm(dim=-1)))


def two_blobs_and_a_speck(points: torch.Tensor) -> torch.Tensor:
    a = (points - torch.tensor([0.4, 0, 0])).norm(dim=-1) < 0.3
    b = (points + torch.tensor([0.4, 0, 0])).norm(dim=-1) < 0.25
    speck = (points - torch.tensor([0, 0.8, 0.8])).norm(dim=-1) < 0.05
    return 10.0 * (a | b | speck).float()


def colour_of(points: torch.Tensor) -> torch.Tensor:
    return (points + 1) / 2


def crashing_unwrapper(vertices, faces):  # a real segfault in the child process
    os.kill(os.getpid(), signal.SIGSEGV)


@pytest.fixture(scope="module")
def sphere():
    return extract_mesh(density_grid(sphere_density, 48, 1.0), 1.0, level=5.0)


def test_sphere_is_meshed_where_the_surface_is(sphere) -> None:
    radius = np.linalg.norm(sphere.vertices, axis=1)
    np.testing.assert_allclose(radius, RADIUS, atol=0.02)
    assert sphere.is_watertight
    assert sphere.volume > 0, "faces wind outwards"


def test_cleanup_keeps_parts_and_drops_floaters() -> None:
    mesh = extract_mesh(density_grid(two_blobs_and_a_speck, 64, 1.0), 1.0, level=5.0)
    assert len(mesh.split(only_watertight=False)) == 2


@pytest.mark.parametrize("field", [lambda p: torch.zeros(p.shape[:-1]), lambda p: torch.full(p.shape[:-1], 50.0)])
def test_empty_or_solid_fields_are_clear_errors(field) -> None:
    with pytest.raises(EmptyFieldError):
        extract_mesh(density_grid(field, 16, 1.0), 1.0, level=5.0)


def test_decimation_reaches_its_target(sphere) -> None:
    small = decimate(sphere, 500)
    assert 400 <= len(small.faces) <= 520
    np.testing.assert_allclose(np.linalg.norm(small.vertices, axis=1), RADIUS, atol=0.04)


def _check_bake(mesh, atlas) -> None:
    assert atlas.uvs.min() >= 0 and atlas.uvs.max() <= 1
    assert atlas.vertex_map.max() < len(mesh.vertices) and len(atlas.faces) == len(mesh.faces)
    texture = bake(np.asarray(mesh.vertices), atlas, colour_of, size=256)
    assert texture.shape == (256, 256, 3)
    # the texel under each atlas vertex carries the colour of its 3D point
    u, v = atlas.uvs[:, 0], atlas.uvs[:, 1]
    cols = np.clip((u * 256).astype(int), 0, 255)
    rows = np.clip(((1 - v) * 256).astype(int), 0, 255)
    expected = colour_of(torch.as_tensor(np.asarray(mesh.vertices)[atlas.vertex_map], dtype=torch.float32)).numpy()
    error = np.abs(texture[rows, cols] / 255 - expected)
    assert np.median(error) < 0.03


def test_xatlas_unwraps_and_the_bake_matches_the_field(sphere) -> None:
    mesh = decimate(sphere, 800)
    atlas = unwrap(np.asarray(mesh.vertices), np.asarray(mesh.faces))
    assert atlas.method == "xatlas"
    _check_bake(mesh, atlas)


def test_a_crashing_unwrapper_still_yields_a_textured_mesh(sphere) -> None:
    mesh = decimate(sphere, 300)
    atlas = unwrap(np.asarray(mesh.vertices), np.asarray(mesh.faces), timeout=60, worker=crashing_unwrapper)
    assert atlas.method == "fallback"
    _check_bake(mesh, atlas)


def test_a_child_that_dies_while_starting_costs_a_fallback_not_a_hang(tmp_path) -> None:
    """A script without a ``__main__`` guard: each spawned child re-runs it and dies on start-up. With a mesh
    bigger than a pipe's 64 KB this used to block the parent for ever (an end-to-end timing script did)."""
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent("""
        import trimesh
        from backend.mesh.uv import unwrap
        mesh = trimesh.creation.icosphere(subdivisions=5)  # 10 k vertices, 20 k faces: ~360 KB of arrays
        print(unwrap(mesh.vertices, mesh.faces, timeout=60).method)
    """))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": root}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "fallback"


def grey(points: torch.Tensor) -> torch.Tensor:
    return torch.full((len(points), 3), 0.5)


def test_footage_paints_the_texels_its_cameras_see_and_the_field_the_rest(sphere) -> None:
    """Footage rendered from a known texture, baked back over a grey field: every texel a camera sees squarely
    gets its true colour back (so the projection's pixel conventions hold), the far side keeps the field's."""
    mesh = decimate(sphere, 800)
    atlas = unwrap(np.asarray(mesh.vertices), np.asarray(mesh.faces))
    truth = bake(np.asarray(mesh.vertices), atlas, colour_of, size=256)
    cameras = ring_cameras(3, np.random.default_rng(4), elevation_deg=(0.0, 0.0), size=128)
    corners = np.asarray(mesh.vertices, dtype=np.float32)[atlas.vertex_map]
    frames = np.stack([(render_textured(corners, atlas.faces, atlas.uvs, truth, c) * 255 + 0.5).astype(np.uint8)
                       for c in cameras])
    painted = bake(np.asarray(mesh.vertices), atlas, grey, size=256, footage=Footage(cameras, frames))
    covered, points, normals = texel_surface(np.asarray(mesh.vertices), atlas, 256)
    squarest = np.max([np.sum(normals.numpy() * _towards(c, points), axis=1) for c in cameras], axis=0)
    texels = painted[covered.numpy()] / 255
    expected = colour_of(points).numpy()
    seen = squarest > 0.8
    assert seen.mean() > 0.15
    assert np.median(np.abs(texels[seen] - expected[seen]).max(axis=1)) < 0.03  # grey would be ~0.2 off
    polar = np.abs(points[:, 2].numpy()) > 0.97 * RADIUS  # the ring of cameras at the equator never sees the poles
    assert polar.any()
    np.testing.assert_allclose(texels[polar], 0.5, atol=2 / 255)


def _towards(camera: Camera, points: torch.Tensor) -> np.ndarray:
    rays = camera.center[None] - points.numpy()
    return rays / np.linalg.norm(rays, axis=1, keepdims=True)


@pytest.mark.parametrize("side", [96, 1200])  # 1200: the visibility depth map is rasterised smaller than the footage
def test_a_surface_hidden_behind_another_keeps_the_field_colour(side: int) -> None:
    """Two spheres in a line with the camera: the back one faces it but is occluded, so red footage paints
    only the front one."""
    front = trimesh.creation.icosphere(subdivisions=3, radius=0.4)
    back = trimesh.creation.icosphere(subdivisions=3, radius=0.4).apply_translation([0, 0, -1.2])
    mesh = trimesh.util.concatenate([front, back])
    atlas = unwrap(np.asarray(mesh.vertices), np.asarray(mesh.faces))
    camera = Camera.look_at(np.array([0.0, 0.0, 3.0]), np.zeros(3), fov_deg=30, width=side, height=side)
    red = np.zeros((1, side, side, 3), dtype=np.uint8)
    red[..., 0] = 255
    texture = bake(np.asarray(mesh.vertices), atlas, grey, size=256, footage=Footage([camera], red))
    covered, points, normals = texel_surface(np.asarray(mesh.vertices), atlas, 256)
    texels = texture[covered.numpy()].astype(int)
    facing = np.sum(normals.numpy() * _towards(camera, points), axis=1) > 0.7
    on_front = points[:, 2].numpy() > -0.6
    assert (facing & ~on_front).sum() > 100, "the back sphere faces the camera"
    assert (texels[facing & on_front, 0] > 230).mean() > 0.95  # painted red
    np.testing.assert_array_equal(texels[facing & ~on_front], 128)  # hidden: the field's grey


def test_the_footage_outlines_part_background_pixels_never_paint_the_texture() -> None:
    """A red card filmed square-on over white, its outline's pixels half white (anti-aliased) and inside the matte:
    a mesh a little larger than the card (as reconstructions are) takes red or the field's grey, never pink."""
    side = np.linspace(-1.0, 1.0, 9)
    xs, ys = np.meshgrid(side, side)
    vertices = np.c_[xs.ravel(), ys.ravel(), np.zeros(xs.size)]
    quads = np.array([[r * 9 + c, r * 9 + c + 1, (r + 1) * 9 + c + 1, (r + 1) * 9 + c] for r in range(8) for c in range(8)])
    faces = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])
    atlas = unwrap(vertices, faces)
    camera = Camera.look_at(np.array([0.0, 0.0, 3.0]), np.zeros(3), up=(0.0, 1.0, 0.0), width=64, height=64)
    frame = np.full((1, 64, 64, 3), 255, dtype=np.uint8)
    frame[0, 20:44, 20:44] = (255, 0, 0)
    frame[0, 19:45, [19, 44]] = frame[0, [19, 44], 19:45] = (255, 128, 128)  # the outline: half card, half white
    matte = (frame[0] < 250).any(axis=-1)[None]
    texture = bake(vertices, atlas, grey, size=128, footage=Footage([camera], frame, matte))
    covered, _, _ = texel_surface(vertices, atlas, 128)
    texels = texture[covered.numpy()].astype(int)
    red = (texels[:, 0] > 230) & (texels[:, 1:] < 30).all(axis=1)
    field = (np.abs(texels - 128) <= 2).all(axis=1)
    assert red.mean() > 0.1 and field.mean() > 0.5
    assert (red | field).mean() > 0.99, "texels painted from the outline's part-white pixels"


def test_later_frames_paint_the_side_the_first_frame_hides() -> None:
    """A sphere that turns half round between two frames before one camera: the first frame's footage (red) paints
    the side facing it, the second's (blue) the side it turned towards the camera, each where tracking put it."""
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    atlas = unwrap(np.asarray(mesh.vertices), np.asarray(mesh.faces))
    camera = Camera.look_at(np.array([0.0, 0.0, 3.0]), np.zeros(3), fov_deg=30, width=96, height=96)
    red, blue = np.zeros((1, 96, 96, 3), dtype=np.uint8), np.zeros((1, 96, 96, 3), dtype=np.uint8)
    red[..., 0] = blue[..., 2] = 255
    turned = (np.asarray(mesh.vertices) * [-1.0, 1.0, -1.0])[atlas.vertex_map]  # half a turn about y
    first_only = bake(np.asarray(mesh.vertices), atlas, grey, size=256, footage=Footage([camera], red))
    both = bake(np.asarray(mesh.vertices), atlas, grey, size=256, footage=Footage([camera], red),
                tracked=[(turned.astype(np.float32), Footage([camera], blue))])
    covered, _, normals = texel_surface(np.asarray(mesh.vertices), atlas, 256)
    front = normals.numpy()[:, 2] > 0.9  # faces the camera at the first frame
    back = normals.numpy()[:, 2] < -0.9  # faces it once turned
    texels, texels_first = both[covered.numpy()].astype(int), first_only[covered.numpy()].astype(int)
    # (the field's grey weighs in a little everywhere: FIELD_WEIGHT)
    assert (texels[front, 0] > 215).mean() > 0.95 and (texels[front, 2] < 40).mean() > 0.95
    assert (texels[back, 2] > 215).mean() > 0.95 and (texels[back, 0] < 40).mean() > 0.95
    np.testing.assert_array_equal(texels_first[back], 128)  # the first frame alone leaves it to the field
