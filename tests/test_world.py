"""The procedural world: deterministic, consistent topology, continuous time, every family."""

import numpy as np
import pytest

from backend.train.data import training_clip
from backend.world import FAMILIES, make_object
from backend.world.clip import render_world_clip
from backend.world.creature import MOTIONS
from backend.world.rigid import ASSEMBLIES
from backend.world.seeds import EVALUATION_SEED_START, EvaluationSeedError, require_training_seed

TIMES = (0.0, 0.17, 0.5, 0.83, 1.0)


@pytest.mark.parametrize("seed", [0, 1, 2, 7, 11, 1_000_000])
def test_same_seed_same_object(seed: int) -> None:
    a, b = make_object(seed), make_object(seed)
    assert a.family == b.family and a.motion == b.motion
    np.testing.assert_array_equal(a.faces, b.faces)
    for t in TIMES:
        np.testing.assert_array_equal(a.vertices_at(t), b.vertices_at(t))


def test_same_seed_same_renders() -> None:
    first = render_world_clip(5, views=2, frames=3, size=48)[3]
    second = render_world_clip(5, views=2, frames=3, size=48)[3]
    for name in ("rgb", "alpha", "mask", "depth", "canonical"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))


def test_different_seeds_differ() -> None:
    shapes = {make_object(s).vertices_at(0.3).tobytes() for s in range(10)}
    assert len(shapes) == 10


@pytest.mark.parametrize("family", list(FAMILIES))
def test_topology_and_motion(family: str) -> None:
    for seed in range(4):
        obj = make_object(seed, family)
        assert obj.family == family
        frames = np.stack([obj.vertices_at(t) for t in np.linspace(0, 1, 9)])
        assert frames.shape[1:] == (len(obj.part_ids), 3)
        assert obj.faces.min() >= 0 and obj.faces.max() < len(obj.part_ids)
        np.testing.assert_array_equal(obj.canonical_vertices, frames[0])
        assert np.abs(frames).max() <= 0.8 + 1e-5, "objects stay inside the camera-safe box"
        assert np.abs(frames - frames[0]).max() > 0.02, "the object moves"
        # continuous time: a tiny step in t is a tiny step in space
        step = np.abs(obj.vertices_at(0.4 + 1e-5) - obj.vertices_at(0.4)).max()
        assert step < 1e-3


def test_families_cover_their_motions() -> None:
    seen = {family: set() for family in FAMILIES}
    for seed in range(120):
        obj = make_object(seed)
        seen[obj.family].add(obj.motion if obj.family != "deformer" else obj.motion.split("+")[0])
        if obj.family == "deformer":
            seen["deformer"].update(obj.motion.split("+"))
    assert seen["creature"] == set(MOTIONS)
    assert seen["rigid"] == set(ASSEMBLIES)
    assert seen["deformer"] == {"bend", "twist", "squash", "wave"}
    bipeds = {make_object(s, "creature").biped for s in range(20)}
    assert bipeds == {True, False}


@pytest.mark.parametrize("seed", range(100, 112))
def test_object_is_in_view_in_every_frame(seed: int) -> None:
    """Ring cameras frame every object over its whole motion: seen, and not cut by the border."""
    render = render_world_clip(seed, views=3, frames=5, size=48, supersample=1)[3]
    assert render.mask.any(axis=(2, 3)).all()
    border = render.mask[..., 0, :] | render.mask[..., -1, :]
    border = border.any(-1) | (render.mask[..., :, 0] | render.mask[..., :, -1]).any(-1)
    assert not border.any()


def test_evaluation_seeds_are_refused_for_training() -> None:
    assert require_training_seed(EVALUATION_SEED_START - 1) == EVALUATION_SEED_START - 1
    with pytest.raises(EvaluationSeedError):
        require_training_seed(EVALUATION_SEED_START)
    with pytest.raises(EvaluationSeedError):
        training_clip(EVALUATION_SEED_START + 5, views=1, frames=2, size=32)
    render = training_clip(3, views=1, frames=2, size=32)[3]
    assert render.rgb.shape == (1, 2, 32, 32, 3)
