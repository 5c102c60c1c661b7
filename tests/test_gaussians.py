"""4D Gaussians on a tracked surface: PLY round trip, consistency over time, and the splat renderer."""

from pathlib import Path

import numpy as np
import torch

from backend.io.cameras import ring_cameras
from backend.mesh.gaussians import SurfaceGaussians, read_ply, write_ply
from backend.render.raster import rasterize
from backend.render.splat import render_gaussians
from backend.world import make_object


def _gaussians(obj, count: int = 20000) -> SurfaceGaussians:
    uvs = np.random.default_rng(0).uniform(size=(len(obj.canonical_vertices), 2))
    texture = np.zeros((8, 8, 3), np.uint8)
    texture[..., 1] = 200
    return SurfaceGaussians.sample(obj.canonical_vertices, obj.faces, uvs, texture, count)


def test_gaussians_follow_the_surface_and_round_trip_through_ply(tmp_path: Path) -> None:
    obj = make_object(21)
    gaussians = _gaussians(obj, 2000)
    for i, t in enumerate((0.0, 0.5)):
        centres, scales = gaussians.at(obj.vertices_at(t), obj.faces)
        write_ply(tmp_path / f"frame_{i}.ply", centres, scales, gaussians.colour)
    back = read_ply(tmp_path / "frame_1.ply")
    expected, scales = gaussians.at(obj.vertices_at(0.5), obj.faces)
    np.testing.assert_allclose(back["centres"], expected, atol=1e-6)
    np.testing.assert_allclose(back["colours"], gaussians.colour, atol=1e-5)
    np.testing.assert_allclose(back["scales"], scales, rtol=1e-5)
    assert np.allclose(back["colours"][:, 1], 200 / 255, atol=1e-3)


def test_splatted_silhouette_matches_the_mesh() -> None:
    obj = make_object(1)  # a closed blob
    camera = ring_cameras(1, np.random.default_rng(4), size=64)[0]
    vertices = obj.vertices_at(0.3)
    centres, scales = _gaussians(obj).at(vertices, obj.faces)
    image = render_gaussians(torch.as_tensor(centres), torch.as_tensor(scales), torch.zeros(len(centres), 3),
                             torch.full((len(centres),), 0.95), camera)
    covered = image.mean(dim=-1).numpy() < 0.5
    truth = rasterize(torch.as_tensor(vertices), torch.as_tensor(obj.faces), camera).mask.numpy()
    iou = (covered & truth).sum() / (covered | truth).sum()
    assert iou > 0.85, iou
    assert image.min() >= 0 and image.max() <= 1.0 + 1e-5


def test_textured_mesh_render_reads_the_texture_where_the_mesh_is() -> None:
    from backend.render.textured import render_textured

    obj = make_object(1)
    camera = ring_cameras(1, np.random.default_rng(2), size=48)[0]
    vertices = obj.vertices_at(0.2)
    uvs = np.full((len(vertices), 2), 0.25)  # every vertex samples the bottom-left quarter
    texture = np.zeros((8, 8, 3), np.uint8)
    texture[4:, :4] = [255, 0, 0]  # bottom-left quarter (rows count from the top)
    image = render_textured(vertices, obj.faces, uvs, texture, camera)
    mask = rasterize(torch.as_tensor(vertices), torch.as_tensor(obj.faces), camera).mask.numpy()
    np.testing.assert_allclose(image[mask], np.array([1.0, 0, 0])[None].repeat(mask.sum(), 0), atol=1e-5)
    assert np.allclose(image[~mask], 1.0)
