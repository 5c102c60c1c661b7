"""The canonical-coordinate chain's mechanics (identity at keyframe 0, maps carried forward)."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from backend.io.cameras import ring_cameras
from backend.models.canonical import CanonicalChain, xyz_maps
from backend.models.config import preset
from backend.models.lim import LIM
from backend.models.lrm import LRM
from backend.models.triplane import FieldSample
from backend.train.train_lim import make_batch

CONFIG = replace(preset("tiny"), dim=64, heads=2, lrm_blocks=2, lim_blocks=2, plane_resolution=32, image_size=32,
                 coarse_samples=16, fine_samples=32)


def test_identity_maps_are_the_surface_positions() -> None:
    """xyz_maps of a known surface (a sphere) are its points: the canonical field at frame 0."""
    lrm = LRM(CONFIG)

    class Sphere(torch.nn.Module):
        def forward(self, planes, points):
            inside = (points.norm(dim=-1) < 0.5).float()
            return FieldSample(inside * 500.0, torch.zeros_like(points), None)

    lrm.decoder = Sphere()
    cameras = ring_cameras(2, np.random.default_rng(1), size=32)
    maps = xyz_maps(lrm, torch.zeros(1), cameras)
    assert maps.shape == (2, 3, 32, 32)
    radius = maps.permute(0, 2, 3, 1).norm(dim=-1)
    seen = radius > 0
    assert seen.float().mean() > 0.1
    interior = seen & (torch.nn.functional.max_pool2d((~seen).float()[:, None], 3, 1, 1)[:, 0] == 0)
    assert torch.allclose(radius[interior], torch.tensor(0.5), atol=0.04)


def test_chain_runs_a_segment_and_hands_maps_on() -> None:
    torch.manual_seed(0)
    lrm = LRM(CONFIG)
    lrm_c = LRM(CONFIG.with_canonical())
    chain = CanonicalChain(lrm, lrm_c, LIM.from_lrm(lrm_c))
    cameras = ring_cameras(4, np.random.default_rng(2), size=32)
    views = torch.rand(4, 9, 32, 32)
    maps = chain.start(views, cameras)
    segment = chain.segment(maps, views, torch.rand(4, 9, 32, 32), [0.25, 0.5], cameras)
    assert len(segment.planes) == 2 and segment.next_maps.shape == maps.shape
    with pytest.raises(ValueError, match="canonical=True"):
        CanonicalChain(lrm, lrm, LIM.from_lrm(lrm))


def test_canonical_lim_batches_hide_the_next_keyframes_maps() -> None:
    batch = make_batch(step=3, rank=0, batch=1, size=32, canonical=True)
    assert batch["views_k"].shape[2] == 12
    assert batch["views_k"][:, :, 9:].abs().sum() > 0, "keyframe k carries its canonical maps"
    assert batch["views_next"][:, :, 9:].abs().sum() == 0, "keyframe k+1's are unknown at inference"
