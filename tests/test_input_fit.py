"""Monocular clips: keyframes fitted to the footage (backend.input_fit) with the shipped models on a world clip."""

import numpy as np
import pytest
import torch

from backend.bench.interp import psnr
from backend.input_fit import FitSettings, fit_to_footage
from backend.io.cameras import ring_cameras
from backend.io.matte import iou
from backend.models.checkpoints import load_checkpoint
from backend.models.mvdiffusion import elevation_of
from backend.models.view_generators import TrainedViews
from backend.monocular import monocular_clip
from backend.pipeline import reconstruct_frames
from backend.reconstruct import Models
from backend.render.volume import render_triplane
from backend.world import make_object
from backend.world.render import render_clip
from conftest import REPO

CHECKPOINTS = REPO / "backend" / "checkpoints"
FRAMES, SIZE = 3, 64


@pytest.fixture(scope="module")
def case() -> dict:
    """A 3-frame evaluation clip seen by one camera through the monocular path (keyframes 0 and 2)."""
    models = Models.load(CHECKPOINTS).monocular()
    diffusion = TrainedViews(load_checkpoint(CHECKPOINTS / "mvdiff", "mvdiff"))
    obj = make_object(1000002)
    camera = ring_cameras(1, np.random.default_rng([1000002, 9]), size=SIZE)[0]
    times = np.linspace(0, 0.1, FRAMES)
    truth = render_clip(obj, [camera], times, supersample=2)
    frames = truth.composite()[0]
    mono = monocular_clip(frames, diffusion, 2, 24.0, float(np.degrees(elevation_of(camera))), seed=0, camera=camera)
    geometry = reconstruct_frames(models.lrm, models.lim, mono.clip.frames, mono.clip.cameras, times, 2)
    return {"lrm": models.lrm, "geometry": geometry, "camera": camera, "anchors": mono.clip.cameras[1:],
            "frames": frames, "mattes": truth.mask[0].astype(np.float32)}


def fit(case: dict, steps: int, seed: int = 0, between_share: float = 0.0, between_anchored: bool = True):
    return fit_to_footage(case["lrm"], case["geometry"], np.arange(FRAMES, dtype=np.float64), case["camera"],
                          case["frames"], case["mattes"], case["anchors"],
                          FitSettings(steps=steps, rays=512, seed=seed, between_share=between_share,
                                      between_anchored=between_anchored))


def _input_iou(case: dict, planes: torch.Tensor, frame: int) -> float:
    with torch.no_grad():
        alpha = render_triplane(case["lrm"], planes, [case["camera"]])["alpha"][0].numpy()
    return iou(alpha > 0.5, case["mattes"][frame] > 0.5)


@torch.no_grad()
def test_fitting_takes_the_footage_outline_and_keeps_the_side_views(case: dict) -> None:
    fitted = fit(case, steps=12, between_share=1)
    # the in-between frame, fitted from the blend of its keyframes' corrections, takes its own outline too
    # (measured: IoU 0.80 unfitted, 0.82 blended, 0.90 fitted)
    blended = fit(case, steps=12).planes[1]
    assert _input_iou(case, fitted.planes[1], 1) > _input_iou(case, blended, 1) + 0.03
    # its anchors (coarse, few rays: FitSettings.between_anchor_scale) still hold the sides
    free = fit(case, steps=12, between_share=1, between_anchored=False).planes[1]
    start, anchored, unanchored = (render_triplane(case["lrm"], p, case["anchors"])["rgb"] for p in (blended, fitted.planes[1], free))
    assert (anchored - start).abs().mean() < 0.7 * (unanchored - start).abs().mean(), \
        ((anchored - start).abs().mean(), (unanchored - start).abs().mean())
    lrm, camera = case["lrm"], case["camera"]
    before = render_triplane(lrm, case["geometry"].planes[0], [camera, *case["anchors"]])
    after = render_triplane(lrm, fitted.planes[0], [camera, *case["anchors"]])
    truth = case["frames"][0].astype(np.float32) / 255
    matte = case["mattes"][0] > 0.5
    assert iou(after["alpha"][0].numpy() > 0.5, matte) > iou(before["alpha"][0].numpy() > 0.5, matte) + 0.03
    assert psnr(after["rgb"][0].clamp(0, 1).numpy(), truth) > psnr(before["rgb"][0].clamp(0, 1).numpy(), truth) + 1.0
    # the anchors: the generated views' cameras see what they saw before, far more than the input camera does
    input_change = (after["rgb"][0] - before["rgb"][0]).abs().mean()
    side_change = (after["rgb"][1:] - before["rgb"][1:]).abs().mean()
    assert side_change < 0.5 * input_change


def test_in_betweens_take_the_blend_of_their_keyframes_corrections_and_the_fit_replays(case: dict) -> None:
    fitted = fit(case, steps=3)
    planes = case["geometry"].planes
    corrections = [f - p for f, p in zip(fitted.planes, planes, strict=True)]
    assert corrections[0].abs().max() > 0 and corrections[2].abs().max() > 0
    torch.testing.assert_close(corrections[1], 0.5 * (corrections[0] + corrections[2]), rtol=0, atol=1e-6)
    again = fit(case, steps=3)
    for a, b in zip(again.planes, fitted.planes, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(fit(case, steps=3, seed=1).planes[0], fitted.planes[0])
    assert fit(case, steps=0) is case["geometry"]
    # with its own steps, the in-between starts from that blend and fits its own footage frame
    refined = fit(case, steps=3, between_share=4)
    torch.testing.assert_close(refined.planes[0], fitted.planes[0], rtol=0, atol=0)  # keyframes: the same fit
    assert not torch.allclose(refined.planes[1], fitted.planes[1])
    with pytest.raises(ValueError, match="keyframe"):
        fit_to_footage(case["lrm"], case["geometry"], np.array([0.0, 1.0, 1.5]), case["camera"], case["frames"],
                       case["mattes"], case["anchors"], FitSettings(steps=1, between_share=0))
