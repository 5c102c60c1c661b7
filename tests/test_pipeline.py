"""Keyframes and in-betweens: every frame gets a triplane, keyframes from the LRM itself."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from backend.io.cameras import ring_cameras
from backend.models.config import preset
from backend.models.lim import LIM
from backend.models.lrm import LRM, camera_projections
from backend.pipeline import keyframe_indices, model_views, reconstruct_frames


@pytest.mark.parametrize(("count", "stride", "expected"), [(9, 4, [0, 4, 8]), (10, 4, [0, 4, 8, 9]), (2, 4, [0, 1])])
def test_keyframes_cover_the_clip(count: int, stride: int, expected: list[int]) -> None:
    assert keyframe_indices(count, stride) == expected


def test_every_frame_gets_planes_and_keyframes_are_the_lrms() -> None:
    config = replace(preset("tiny"), dim=64, heads=2, lrm_blocks=2, lim_blocks=2, plane_resolution=32, image_size=32)
    torch.manual_seed(0)
    lrm, cameras = LRM(config).eval(), ring_cameras(3, np.random.default_rng(0), size=64)
    lim = LIM.from_lrm(lrm).eval()
    torch.nn.init.normal_(lim.blocks[0].alpha.weight, std=0.5)  # α projections start at zero; give α a say
    frames = np.random.default_rng(1).integers(0, 256, size=(3, 7, 64, 64, 3), dtype=np.uint8)
    result = reconstruct_frames(lrm, lim, frames, cameras, np.linspace(0, 1, 7), stride=3)
    assert result.keyframes == [0, 3, 6]
    assert all(p is not None and p.shape == (1, 3, lrm.config.stored_channels, 32, 32) for p in result.planes)
    with torch.no_grad():
        direct = lrm(model_views(frames[:, 3], cameras, 32)[None], camera_projections(cameras, 32)[None]).planes
    torch.testing.assert_close(result.planes[3], direct)
    assert not torch.allclose(result.planes[1], result.planes[2])
