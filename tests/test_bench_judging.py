"""The judging the benchmarks share (backend.bench.track): vertex error against true trajectories."""

import numpy as np

from backend.bench.track import vertex_errors
from backend.world import make_object


def test_vertex_error_is_zero_on_the_truth_and_the_still_meshs_error_on_a_still_mesh() -> None:
    obj = make_object(1000002)  # a box whose lid swings: a motion a still mesh gets wrong
    times = np.linspace(0, 1, 6)
    rng = np.random.default_rng(0)
    # points on the truth's surface at t = 0, carried along their true trajectories
    faces = obj.faces[rng.integers(0, len(obj.faces), 200)]
    weights = rng.dirichlet(np.ones(3), 200)
    along = np.stack([(weights[..., None] * obj.vertices_at(t)[faces]).sum(axis=1) for t in times]).astype(np.float32)
    errors, still = vertex_errors(obj, times, along)
    assert errors.shape == (6, 200)
    assert errors.max() < 1e-3  # % of the diagonal
    assert still[0].max() < 1e-3 and still[-1].mean() > 1.0  # the lid moved: a still mesh would be off
    held = np.repeat(along[:1], len(times), axis=0)
    errors_held, _ = vertex_errors(obj, times, held)
    np.testing.assert_allclose(errors_held, still, atol=1e-4)
