"""The in-betweens' colour: keyframe views moved along optical flow, and the plane lift read from them."""

from dataclasses import replace

import numpy as np
import torch

from backend.io.cameras import ring_cameras
from backend.models.config import preset
from backend.models.lrm import LRM, camera_projections
from backend.models.view_flow import lifted_along_flow, views_between

RED = torch.tensor([0.9, 0.1, 0.1])


def _square_view(left: int, size: int = 64, side: int = 12) -> torch.Tensor:
    """(3, size, size): a red square on white whose left edge is at column ``left``."""
    view = torch.ones(3, size, size)
    view[:, 26:26 + side, left:left + side] = RED[:, None, None]
    return view


def _redness(view: torch.Tensor) -> torch.Tensor:
    return view[0] - view[1]  # 0.8 inside the square, 0 on white


def test_a_moving_square_is_moved_not_cross_faded() -> None:
    first, second = _square_view(14)[None], _square_view(22)[None]
    halfway = views_between(first, second, torch.tensor([0.5]))[0, 0]
    moved = _redness(halfway)
    # the square sits whole at its halfway place (columns 18-29): a cross-fade would leave it at half strength
    # in the columns only one keyframe covers, and a ghost at each end
    assert moved[28:36, 19:29].mean() > 0.65
    assert moved[28:36, 14:18].abs().max() < 0.2 and moved[28:36, 30:34].abs().max() < 0.2
    faded = _redness(0.5 * first[0] + 0.5 * second[0])
    assert faded[28:36, 14:18].mean() > 0.35  # what the cross-fade does there


def test_the_flow_lift_is_each_keyframes_own_lift_at_its_end() -> None:
    torch.manual_seed(0)
    config = replace(preset("tiny"), dim=64, heads=2, lrm_blocks=2, lim_blocks=2, plane_resolution=32)
    lrm = LRM(config)
    torch.nn.init.normal_(lrm.plane_lift.mlp[-1].weight)  # it starts silent
    cameras = ring_cameras(3, np.random.default_rng(3), size=config.image_size)
    projections = camera_projections(cameras)
    # views already on the uint8 grid, as footage is, so moving them by nothing changes nothing
    views = [torch.cat([torch.randint(0, 256, (3, 3, 64, 64)) / 255, torch.zeros(3, 6, 64, 64)], dim=1) for _ in range(2)]
    lifted = lifted_along_flow(lrm, views[0], views[1], projections, torch.tensor([0.0, 1.0]))
    for index, view in enumerate(views):
        own = lrm(view[None], projections[None]).lifted[0]
        torch.testing.assert_close(lifted[index], own, atol=1e-5, rtol=1e-4)
    assert lifted_along_flow(LRM(replace(config, plane_lift=False, colour_prior=False)), views[0], views[1],
                             projections, torch.tensor([0.5])) is None
