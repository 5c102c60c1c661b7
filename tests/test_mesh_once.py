"""Mesh once: extraction, cleanup, decimation, UV atlas (crash-isolated) and texture bake."""

import os
import signal

import numpy as np
import pytest
import torch

from backend.mesh.extract import EmptyFieldError, decimate, density_grid, extract_mesh
from backend.mesh.texture import bake
from backend.mesh.uv import unwrap

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
