"""LRM, LIM, decoder and checkpoints: shapes, gradients, strict loading, one step of learning."""

import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from backend.io.cameras import ring_cameras
from backend.models.checkpoints import CheckpointError, load_checkpoint, save_checkpoint, warm_start
from backend.models.config import preset
from backend.models.lift import view_statistics
from backend.models.lim import LIM
from backend.models.lrm import LRM, camera_projections
from backend.models.triplane import PLANE_AXES, PRIOR_GATE_SCALE, sample_planes
from backend.train.losses import causal_consistency, rendering_losses, weighted_total
from backend.train.train_lrm import make_batch

# a smaller tiny: same code paths, quicker tests
SMALL = replace(preset("tiny"), dim=64, heads=2, lrm_blocks=2, lim_blocks=2, plane_resolution=32, image_size=32,
                coarse_samples=12, fine_samples=12)


def _views(batch: int = 2, views: int = 3) -> torch.Tensor:
    return torch.rand(batch, views, SMALL.input_channels, SMALL.image_size, SMALL.image_size)


def _projections(batch: int = 2, views: int = 3) -> torch.Tensor:
    cameras = ring_cameras(views, np.random.default_rng(views), size=SMALL.image_size)
    return camera_projections(cameras)[None].expand(batch, -1, -1, -1)


def test_lrm_and_lim_shapes_and_gradients() -> None:
    torch.manual_seed(0)
    lrm = LRM(SMALL)
    out = lrm(_views(), _projections())
    n, r = SMALL.triplane_tokens, SMALL.plane_resolution
    assert out.planes.shape == (2, 3, SMALL.stored_channels, r, r) and SMALL.stored_channels == SMALL.plane_channels + 3
    assert len(out.features) == SMALL.feature_blocks and out.features[0].shape == (2, 3 * n * n, SMALL.dim)
    lim = LIM.from_lrm(lrm)
    alphas = torch.tensor([0.3, 0.9])
    hop = lim(out.tokens, out.features, _views(views=5), alphas)  # any number of views
    planes = lrm.tokens_to_planes(hop.tokens, lrm.lifted_between(out, None, alphas))
    sample = lrm.decoder(planes, torch.rand(2, 100, 3) * 2 - 1)
    loss = sample.density.mean() + sample.rgb.mean()
    loss.backward()
    for name, p in list(lrm.named_parameters()) + list(lim.named_parameters()):
        if name.endswith("alpha.weight") or name.endswith("alpha.bias"):
            continue  # zero-initialised α projections get gradient once α matters downstream
        assert p.grad is not None, name
    assert sum(p.grad.abs().sum() for p in lim.parameters() if p.grad is not None) > 0


def test_plane_sampling_is_grid_sample_on_each_plane_summed_with_and_without_gradients() -> None:
    """Every way sample_planes reads the planes (an embedding bag, with a sparse product for the planes'
    gradient; batched grid_sample where the points need one) against the definition: bilinear, border padding,
    pixel centres, one grid_sample a plane."""
    torch.manual_seed(0)
    planes = torch.randn(2, 3, 5, 9, 9, requires_grad=True)
    points = torch.rand(2, 400, 3) * 3 - 1.5  # a quarter outside the box on some axis: the border's values
    points[0, :3] = torch.tensor([[1.0, -1.0, 0.0], [-1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])  # edges and centre
    bound = 1.25

    def definition(points: torch.Tensor) -> torch.Tensor:
        features = 0
        for index, (u, v) in enumerate(PLANE_AXES):
            grid = (points / bound)[..., [u, v]].unsqueeze(1)
            sampled = torch.nn.functional.grid_sample(planes[:, index], grid, mode="bilinear", padding_mode="border",
                                                      align_corners=False)
            features = features + sampled[:, :, 0].transpose(1, 2)
        return features

    expected = definition(points)
    with torch.no_grad():
        torch.testing.assert_close(sample_planes(planes, points, bound), expected, atol=1e-5, rtol=1e-5)
    weights = torch.randn_like(expected)
    (expected_grad,) = torch.autograd.grad((expected * weights).sum(), planes)
    sampled = sample_planes(planes, points, bound)
    torch.testing.assert_close(sampled, expected, atol=1e-5, rtol=1e-5)
    (grad,) = torch.autograd.grad((sampled * weights).sum(), planes)
    torch.testing.assert_close(grad, expected_grad, atol=1e-4, rtol=1e-4)
    movable = points.clone().requires_grad_(True)
    expected_point_grad = torch.autograd.grad((definition(movable) * weights).sum(), movable)[0]
    point_grad = torch.autograd.grad((sample_planes(planes, movable, bound) * weights).sum(), movable)[0]
    torch.testing.assert_close(point_grad, expected_point_grad, atol=1e-4, rtol=1e-4)


def test_view_statistics_read_what_every_view_sees() -> None:
    cameras = ring_cameras(4, np.random.default_rng(1), size=SMALL.image_size)
    projections = camera_projections(cameras)[None]
    rgb = torch.ones(1, 4, 3, SMALL.image_size, SMALL.image_size) * torch.tensor([0.8, 0.1, 0.2]).view(1, 1, 3, 1, 1)
    points = torch.tensor([[0.0, 0.0, 0.0], [0.2, -0.1, 0.3], [40.0, 0.0, 0.0]])  # the last is behind some cameras
    stats = view_statistics(rgb, projections, points)[0]
    torch.testing.assert_close(stats[:2, :3], torch.tensor([[0.8, 0.1, 0.2]] * 2))
    assert (stats[:2, 3:6] < 1e-2).all() and (stats[:2, 6] == 1).all()
    assert stats[2, 6] < 1 and (stats[2, :3] > torch.tensor([0.8, 0.1, 0.2])).all()  # unseen reads as white


def test_plane_lift_starts_silent_and_blends_between_keyframes(tmp_path: Path) -> None:
    torch.manual_seed(0)
    without = LRM(replace(SMALL, plane_lift=False, colour_prior=False))
    save_checkpoint(without, tmp_path / "old", "lrm")
    with_lift = LRM(replace(SMALL, colour_prior=False))
    assert warm_start(with_lift, tmp_path / "old", "lrm") == [n for n, _ in with_lift.plane_lift.named_parameters(prefix="plane_lift")]
    views, projections = _views(), _projections()
    torch.testing.assert_close(with_lift(views, projections).planes, without(views, projections).planes)
    torch.nn.init.normal_(with_lift.plane_lift.mlp[-1].weight)
    first, second = with_lift(views[:1], projections[:1]), with_lift(views[1:], projections[1:])
    assert first.lifted.abs().mean() > 0
    blended = LRM.lifted_between(first, second, torch.tensor([0.0, 0.25, 1.0]))
    torch.testing.assert_close(blended[0], first.lifted[0])
    torch.testing.assert_close(blended[1], 0.75 * first.lifted[0] + 0.25 * second.lifted[0])
    torch.testing.assert_close(blended[2], second.lifted[0])
    assert LRM.lifted_between(without(views[:1], projections[:1]), None, torch.tensor([0.5])) is None


def test_a_canonical_model_starts_at_the_identity_and_old_checkpoints_keep_their_head(tmp_path: Path) -> None:
    """A canonical LRM warm-started from the plain LRM maps every point to itself (no motion) until it
    learns otherwise; a checkpoint saved before the offset head existed decodes coordinates outright."""
    torch.manual_seed(0)
    save_checkpoint(LRM(SMALL), tmp_path / "lrm", "lrm")
    canonical = LRM(SMALL.with_canonical())
    assert canonical.config.canonical_offset
    assert warm_start(canonical, tmp_path / "lrm", "lrm") == ["decoder.canonical.weight", "decoder.canonical.bias"]
    views = torch.rand(1, 3, canonical.config.input_channels, SMALL.image_size, SMALL.image_size)
    planes = canonical(views, _projections(1)).planes
    points = torch.rand(1, 50, 3) * 1.6 - 0.8
    torch.testing.assert_close(canonical.decoder(planes, points).canonical, points)
    old = LRM(replace(SMALL, canonical=True))  # as lrm_canonical was saved in session 2
    save_checkpoint(old, tmp_path / "old", "lrm")
    loaded = load_checkpoint(tmp_path / "old", "lrm")
    assert not loaded.config.canonical_offset
    raw = loaded.decoder(planes, points).canonical
    assert (raw - points).abs().mean() > 0.1 and raw.abs().max() <= loaded.config.bound


def test_colour_prior_carries_the_colour_the_views_agree_on() -> None:
    torch.manual_seed(0)
    lrm = LRM(SMALL)
    cameras = ring_cameras(4, np.random.default_rng(2), size=SMALL.image_size)
    projections = camera_projections(cameras)[None]
    colour = torch.tensor([0.8, 0.1, 0.2])
    rgb = torch.ones(1, 4, 3, SMALL.image_size, SMALL.image_size)
    rgb[..., 12:20, 12:20] = colour.view(3, 1, 1)  # an object in the middle of every view
    views = torch.cat([rgb, torch.zeros(1, 4, 6, SMALL.image_size, SMALL.image_size)], dim=2)
    out = lrm(views, projections)
    prior = out.lifted[0, :, SMALL.plane_channels:]  # (3 planes, RGB, R, R)
    r = SMALL.plane_resolution
    torch.testing.assert_close(prior[:, :, r // 2, r // 2], colour.expand(3, 3), atol=0.05, rtol=0)  # the centre line
    torch.testing.assert_close(prior[:, :, 0, 0], torch.ones(3, 3))  # a corner line misses the object: white
    with torch.no_grad():
        lrm.decoder.rgb.weight.zero_()
        lrm.decoder.rgb.bias.zero_()
        lrm.decoder.prior_gate.fill_(1 / PRIOR_GATE_SCALE)  # the gate at 1: the RGB is the prior itself
    centre = lrm.decoder(out.planes, torch.zeros(1, 1, 3)).rgb[0, 0]
    torch.testing.assert_close(centre, colour, atol=0.05, rtol=0)


def test_lim_starts_from_the_lrm_blocks() -> None:
    lrm = LRM(SMALL)
    lim = LIM.from_lrm(lrm)
    torch.testing.assert_close(lim.blocks[-1].body.mlp[0].weight, lrm.blocks[-1].body.mlp[0].weight)
    torch.testing.assert_close(lim.tokenizer.linear.weight, lrm.tokenizer.linear.weight)


def test_checkpoint_round_trip_is_exact(tmp_path: Path) -> None:
    lrm = LRM(SMALL)
    save_checkpoint(lrm, tmp_path / "lrm", "lrm")
    loaded = load_checkpoint(tmp_path / "lrm", "lrm")
    for name, tensor in lrm.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    views, projections = _views(), _projections()
    with torch.no_grad():
        torch.testing.assert_close(lrm.eval()(views, projections).planes, loaded(views, projections).planes, rtol=0, atol=0)
    # fp16 for shipping: loads back as float32 within fp16 precision
    save_checkpoint(lrm, tmp_path / "half", "lrm", dtype=torch.float16)
    half = load_checkpoint(tmp_path / "half", "lrm")
    assert half.triplane_tokens.dtype == torch.float32
    torch.testing.assert_close(half.triplane_tokens, lrm.triplane_tokens, atol=1e-3, rtol=1e-3)


def test_loader_refuses_what_does_not_fit(tmp_path: Path) -> None:
    save_checkpoint(LRM(SMALL), tmp_path / "ok", "lrm")
    with pytest.raises(CheckpointError, match="expected 'lim'"):
        load_checkpoint(tmp_path / "ok", "lim")
    # weights from a different size under this config: wrong shapes
    save_checkpoint(LRM(replace(SMALL, dim=32, heads=2)), tmp_path / "other", "lrm")
    (tmp_path / "other" / "config.json").write_text((tmp_path / "ok" / "config.json").read_text())
    with pytest.raises(CheckpointError, match="wrong shapes"):
        load_checkpoint(tmp_path / "other", "lrm")
    # a pickle beside the weights, or pretending to be them
    (tmp_path / "ok" / "model.pt").write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(tmp_path / "ok", "lrm")
    (tmp_path / "ok" / "model.pt").unlink()
    (tmp_path / "ok" / "model.safetensors").write_bytes(pickle.dumps(LRM(SMALL).state_dict()))
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        load_checkpoint(tmp_path / "ok", "lrm")
    with pytest.raises(CheckpointError, match="not a checkpoint folder"):
        load_checkpoint(tmp_path / "missing", "lrm")


def test_one_training_step_lowers_the_loss_on_a_fixed_batch() -> None:
    torch.manual_seed(0)
    model = LRM(SMALL)
    batch = make_batch(step=0, rank=0, batch=1, size=SMALL.image_size, canonical=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def loss() -> torch.Tensor:
        out = model(batch["views"], batch["projections"])
        g = torch.Generator().manual_seed(1)  # the same rays every time
        torch.manual_seed(2)  # the same stratified jitter every time
        return weighted_total(rendering_losses(lambda p: model.decoder(out.planes, p), batch, SMALL, 256, g))

    before = loss()
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after = loss()
    assert after < before


def test_causal_loss_is_zero_when_the_hops_agree_by_construction() -> None:
    """A linear interpolator between a state and the keyframe k+1 is causally consistent."""
    torch.manual_seed(0)
    start, end = torch.randn(3, 5), torch.randn(3, 5)
    alpha = torch.tensor([0.3, 0.7, 0.9])
    alpha_r = torch.tensor([0.25, 0.5, 0.75]) * alpha

    def linear(state, views, a):
        return (1 - a[:, None]) * state + a[:, None] * views

    def identity(state):
        return state

    direct = linear(start, end, alpha)
    assert causal_consistency(linear, start, end, alpha, alpha_r, identity, direct) < 1e-10

    def eased(state, views, a):  # not consistent: hopping changes the path
        return (1 - a[:, None] ** 2) * state + a[:, None] ** 2 * views

    assert causal_consistency(eased, start, end, alpha, alpha_r, identity, eased(start, end, alpha)) > 1e-3
