"""The volume renderer against an analytic field: a solid sphere."""

import numpy as np
import torch

from backend.io.cameras import ring_cameras
from backend.models.triplane import FieldSample
from backend.render.volume import camera_rays, render_rays, render_views

RADIUS = 0.5


def sphere(points: torch.Tensor) -> FieldSample:
    inside = (points.norm(dim=-1) < RADIUS).float()
    rgb = torch.stack([0.5 + 0.5 * points[..., 0].clamp(-1, 1), torch.full_like(inside, 0.3), torch.full_like(inside, 0.8)], -1)
    return FieldSample(inside * 500.0, rgb, points.clone())


def test_sphere_silhouette_depth_and_canonical() -> None:
    camera = ring_cameras(1, np.random.default_rng(0), size=48)[0]
    out = render_views(sphere, [camera], bound=1.0, coarse=32, fine=64, chunk=1000)
    origin, dirs = camera.pixel_rays()
    # analytic ray-sphere intersection
    b = dirs @ origin
    c = origin @ origin - RADIUS**2
    disc = b**2 - c
    hit = disc > 0
    distance = -b - np.sqrt(np.where(hit, disc, 0))
    depth = distance * (dirs @ camera.rotation[2])
    alpha = out["alpha"][0].numpy()
    interior = hit & (disc > 0.02)  # away from the grazing silhouette
    assert (alpha[interior] > 0.98).all()
    assert (alpha[~hit] < 0.02).all()
    np.testing.assert_allclose(out["depth"][0].numpy()[interior], depth[interior], atol=0.03)
    surface = origin + distance[..., None] * dirs
    np.testing.assert_allclose(out["canonical"][0].numpy()[interior], surface[interior], atol=0.04)
    assert np.allclose(out["rgb"][0].numpy()[~hit], 1.0, atol=0.02), "white background"


def test_without_gradients_the_coarse_samples_are_reused_and_the_render_is_the_same() -> None:
    """Under no_grad the fine pass queries only the importance samples and merges them with the coarse ones;
    with gradients it queries all of them again. Same field, same samples: the same render."""
    calls = []

    def counted(points: torch.Tensor) -> FieldSample:
        calls.append(points.shape[1])
        soft = torch.sigmoid(20 * (RADIUS - points.norm(dim=-1))) * 50.0  # a soft sphere: weights spread over samples
        return FieldSample(soft, sphere(points).rgb, points.clone())

    camera = ring_cameras(1, np.random.default_rng(1), size=24)[0]
    with torch.no_grad():
        reused = render_views(counted, [camera], bound=1.0, coarse=16, fine=24)
    assert calls == [24 * 24 * 16, 24 * 24 * 24]
    calls.clear()
    origins, dirs, _ = camera_rays([camera])
    with torch.enable_grad():
        again = render_rays(counted, origins, dirs, 1.0, 16, 24, deterministic=True)
    assert calls == [24 * 24 * 16, 24 * 24 * 40]
    torch.testing.assert_close(reused["rgb"].reshape(1, -1, 3), again.rgb, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(reused["alpha"].reshape(1, -1), again.alpha, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(reused["canonical"].reshape(1, -1, 3), again.canonical, atol=1e-5, rtol=1e-5)
