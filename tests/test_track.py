"""Mesh tracking against exact canonical fields from the world: the ground-truth motion comes back."""

import numpy as np
import pytest
import trimesh

from backend.mesh.proximity import closest_points
from backend.mesh.track import keep_upright, lay_onto_surface, mesh_quality, smooth_in_time, track_vertices
from backend.world import make_object


def surface_samples(obj, t: float, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Points on the posed surface at t, and their exact canonical coordinates (same barycentrics)."""
    posed = trimesh.Trimesh(obj.vertices_at(t), obj.faces, process=False)
    points, face_index = trimesh.sample.sample_surface(posed, count, seed=seed)
    bary = trimesh.triangles.points_to_barycentric(posed.triangles[face_index], points)
    canonical = (bary[..., None] * obj.canonical_vertices[obj.faces[face_index]]).sum(axis=1)
    return np.asarray(points), canonical


@pytest.mark.parametrize("seed", [1, 11, 21])
def test_tracking_exact_canonical_fields_recovers_the_vertices(seed: int) -> None:
    obj = make_object(seed)
    times = np.linspace(0, 1, 32)  # clip-rate frames: between them no triangle really turns by 90°
    diagonal = np.linalg.norm(np.ptp(obj.canonical_vertices, axis=0))
    tracked = []
    for i, t in enumerate(times):
        positions, canonical = surface_samples(obj, t, 20_000, seed=i)
        tracked.append(track_vertices(obj.canonical_vertices, positions, canonical))
    tracked = np.stack(tracked)
    truth = np.stack([obj.vertices_at(t) for t in times])
    error = np.linalg.norm(tracked - truth, axis=-1) / diagonal
    assert error.mean() < 0.002 and np.percentile(error, 95) < 0.006, (error.mean(), np.percentile(error, 95))
    report = mesh_quality(tracked, obj.faces)
    assert max(report.flipped_pct) < 1.0


def test_closest_points_on_a_mesh_are_trimeshs_and_an_empty_surface_is_refused() -> None:
    rng = np.random.default_rng(3)
    surface = trimesh.creation.icosphere(subdivisions=3)
    surface.vertices = surface.vertices * [1.0, 0.6, 0.8] + rng.normal(0, 0.02, surface.vertices.shape)
    points = rng.normal(0, 0.7, (300, 3))
    expected, expected_distance, _ = trimesh.proximity.closest_point(surface, points)
    closest, distance, triangle = closest_points(surface, points)
    np.testing.assert_allclose(distance, expected_distance, atol=1e-9)
    np.testing.assert_allclose(closest, expected, atol=1e-6)
    # the triangle named holds the point (on a shared edge either neighbour does)
    on_triangle = trimesh.triangles.closest_point(surface.triangles[triangle], points)
    np.testing.assert_allclose(on_triangle, closest, atol=1e-6)
    with pytest.raises(ValueError, match="no triangles"):
        closest_points(trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), int)), points)


def test_smoothing_does_not_lag_a_steady_motion() -> None:
    frames = np.linspace(0, 1, 9)[:, None, None] * np.ones((1, 5, 3))  # constant velocity
    np.testing.assert_allclose(smooth_in_time(frames), frames, atol=1e-12)
    noisy = frames + np.random.default_rng(0).normal(0, 0.01, frames.shape)
    assert np.abs(smooth_in_time(noisy) - frames).mean() < np.abs(noisy - frames).mean()


def test_quality_report_sees_a_flip_and_a_stretch() -> None:
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], dtype=float)
    faces = np.array([[0, 1, 2], [1, 3, 2]])
    flipped = vertices.copy()
    flipped[3] = [-1.5, -1.5, 0]  # folds the second triangle over, stretching two edges 2.9x
    report = mesh_quality(np.stack([vertices, vertices, flipped]), faces)
    assert report.flipped_pct == [0.0, 0.0, 50.0]
    assert report.stretched_pct[2] > 0


def test_outliers_are_pulled_back_and_coherent_motion_is_kept() -> None:
    sphere = trimesh.creation.icosphere(subdivisions=2)
    rest, faces = np.asarray(sphere.vertices), np.asarray(sphere.faces)
    from backend.mesh.track import project_to_surface, reject_outliers, vertex_neighbours

    neighbours = vertex_neighbours(faces, len(rest))
    shifted = rest + np.array([0.3, -0.1, 0.2])  # everything moves together: nothing is an outlier
    np.testing.assert_array_equal(reject_outliers(shifted, rest, neighbours, 0.1), shifted)
    spiked = shifted.copy()
    spiked[7] += [2.0, 0.0, 0.0]  # one wrong correspondence
    fixed = reject_outliers(spiked, rest, neighbours, 0.1)
    np.testing.assert_allclose(fixed[7], shifted[7], atol=1e-9)
    # random displacements on a mesh whose rings vary in size (the sphere's 5s and 6s plus a lone vertex):
    # each vertex against the median of its own ring, as defined
    noisy = rest + np.random.default_rng(0).normal(scale=0.05, size=rest.shape)
    lone = [*neighbours, np.zeros(0, dtype=np.int64)]
    noisy_all, rest_all = np.vstack([noisy, [[9.0, 9, 9]]]), np.vstack([rest, [[0.0, 0, 0]]])
    expected = noisy_all.copy()
    for v, ring in enumerate(lone):
        median = np.median(noisy_all[ring] - rest_all[ring], axis=0) if len(ring) else noisy_all[v] - rest_all[v]
        if np.linalg.norm(noisy_all[v] - rest_all[v] - median) > 0.05:
            expected[v] = rest_all[v] + median
    assert (expected != noisy_all).any()
    np.testing.assert_array_equal(reject_outliers(noisy_all, rest_all, lone, 0.05), expected)
    samples = np.asarray(trimesh.creation.icosphere(subdivisions=5).vertices)
    lifted = rest * 1.05  # off the surface by 0.05
    on_surface = project_to_surface(lifted, samples)
    assert np.abs(np.linalg.norm(on_surface, axis=1) - 1).max() < 0.01


def test_codes_read_from_the_same_biased_field_cancel_its_bias() -> None:
    """A learned canonical field that shrinks toward the centre (regression to the mean) misplaces
    vertices whose codes are their exact XYZ; codes read from the field itself at frame 0 do not."""
    obj = make_object(11)
    centre = obj.canonical_vertices.mean(axis=0)

    def biased(canonical: np.ndarray) -> np.ndarray:
        return centre + 0.7 * (canonical - centre)

    diagonal = np.linalg.norm(np.ptp(obj.canonical_vertices, axis=0))
    t = 0.6
    positions, canonical = surface_samples(obj, t, 20_000, seed=3)
    truth = obj.vertices_at(t)
    exact_codes = track_vertices(obj.canonical_vertices, positions, biased(canonical))
    own_codes = track_vertices(biased(obj.canonical_vertices), positions, biased(canonical))
    error_exact = np.linalg.norm(exact_codes - truth, axis=-1).mean() / diagonal
    error_own = np.linalg.norm(own_codes - truth, axis=-1).mean() / diagonal
    assert error_own < 0.003 and error_exact > 5 * error_own, (error_own, error_exact)


def test_registration_follows_a_ground_truth_motion_better_than_projection() -> None:
    """Non-rigid ICP of a posed world mesh onto the same object three frames later: its vertices land
    nearer their true positions than a mesh left still or each vertex laid onto the new surface."""
    from backend.mesh.track import project_to_surface, register_to_surface

    obj = make_object(1000003)
    start, later = 0.3, 0.3 + 3 / 31
    before = trimesh.Trimesh(obj.vertices_at(start), obj.faces, process=False)
    after = trimesh.Trimesh(obj.vertices_at(later), obj.faces, process=False)
    truth = after.vertices
    diagonal = np.linalg.norm(np.ptp(obj.canonical_vertices, axis=0))

    def error(points: np.ndarray) -> float:
        return float(np.linalg.norm(points - truth, axis=1).mean() / diagonal)

    surface = after.subdivide_loop(iterations=1)  # the same surface, smoothed and tessellated anew: no shared vertices
    registered = register_to_surface(np.asarray(before.vertices), obj.faces, surface)
    projected = project_to_surface(np.asarray(before.vertices), np.asarray(surface.sample(20_000, seed=0)))
    assert error(registered) < 0.8 * error(before.vertices) and error(registered) < 0.95 * error(projected), (
        error(registered), error(before.vertices), error(projected))
    assert max(mesh_quality(np.stack([before.vertices, registered]), obj.faces).flipped_pct) < 1.0


def test_a_large_mesh_follows_through_its_proxy() -> None:
    """Over the vertex cap the mesh is registered through a decimated proxy; it still follows the motion."""
    from backend.mesh.track import SurfaceFollower

    obj = make_object(1000003)
    before = trimesh.Trimesh(obj.vertices_at(0.3), obj.faces, process=False)
    after = trimesh.Trimesh(obj.vertices_at(0.3 + 3 / 31), obj.faces, process=False)
    # a soft follower (the default is stiff: reconstructed surfaces are noisy), so that a small wave shows through
    follower = SurfaceFollower(np.asarray(before.vertices), obj.faces, max_vertices=400, stiffness=1.0)
    assert len(follower.proxy) < 0.5 * len(before.vertices)
    moved = follower.step(after.subdivide_loop(iterations=1))
    still = np.linalg.norm(before.vertices - after.vertices, axis=1).mean()
    assert np.linalg.norm(moved - after.vertices, axis=1).mean() < 0.8 * still


def test_a_bad_frame_never_stops_the_follower() -> None:
    """A frame whose surface is a few points, and a mesh whose vertices collapsed onto each other (what a
    bad frame leaves): the registration reports no solution rather than raising, the follower keeps the
    mesh for that frame, then recovers from the frame-0 shape onto the next good surface."""
    from backend.mesh.track import SurfaceFollower, register_to_surface

    obj = make_object(1000003)
    before = np.asarray(obj.vertices_at(0.3), dtype=np.float32)
    after = trimesh.Trimesh(obj.vertices_at(0.3 + 3 / 31), obj.faces, process=False)
    collapsed = before.copy()
    collapsed[obj.faces[:20].ravel()] = collapsed[obj.faces[0, 0]]  # zero-length edges: the stiffness is 1/length
    assert register_to_surface(collapsed, obj.faces, after.subdivide_loop(iterations=1)) is None
    follower = SurfaceFollower(before, obj.faces, max_vertices=len(before))  # no proxy: the mesh itself collapsed
    follower.proxy = collapsed.copy()  # as if the last frames had collapsed it
    follower.vertices = collapsed.copy()
    moved = follower.step(after.subdivide_loop(iterations=1))
    assert follower.failures == 0 and np.isfinite(moved).all()
    still = np.linalg.norm(before - after.vertices, axis=1).mean()
    assert np.linalg.norm(moved - after.vertices, axis=1).mean() < 0.8 * still
    speck = trimesh.Trimesh([[0, 0, 0], [1e-3, 0, 0], [0, 1e-3, 0]], [[0, 1, 2]], process=False)
    kept = follower.step(speck)
    assert follower.failures == 1 and np.array_equal(kept, moved)


def test_arap_carries_a_hinged_box_through_its_motion_where_affine_icp_slides() -> None:
    """A world box whose lid swings on a hinge, followed frame by frame onto its exact surfaces with no
    correspondences at all: the as-rigid-as-possible follower keeps every vertex near its true place,
    while non-rigid ICP's per-vertex affine maps let the lid slide (the reason tracking uses ARAP)."""
    from backend.mesh.track import SurfaceFollower

    obj = make_object(1000000)
    assert obj.family == "rigid"
    times = np.linspace(0, 1, 32)[::2]

    def posed(t: float) -> trimesh.Trimesh:
        return trimesh.Trimesh(*trimesh.remesh.subdivide(obj.vertices_at(t), obj.faces), process=False)

    start = posed(times[0])
    diagonal = np.linalg.norm(np.ptp(obj.canonical_vertices, axis=0))
    errors = {}
    for method in ("arap", "nricp"):
        follower = SurfaceFollower(np.asarray(start.vertices), start.faces, method=method)
        per_frame = []
        for t in times[1:]:
            truth = posed(t)
            per_frame.append(np.linalg.norm(follower.step(truth) - truth.vertices, axis=1).mean() / diagonal)
        errors[method] = float(np.mean(per_frame))
        assert follower.failures == 0
    still = np.mean([np.linalg.norm(start.vertices - posed(t).vertices, axis=1).mean() / diagonal for t in times[1:]])
    assert errors["arap"] < 0.035 and errors["arap"] < 0.25 * still and errors["arap"] < 0.5 * errors["nricp"], (errors, still)


def test_triangles_turned_over_are_put_back() -> None:
    """A corner dragged across its opposite edge turns its triangle over; its corners go back, the rest stays."""
    start = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0], [2, 0, 0], [2, 1, 0]], dtype=np.float32)
    faces = np.array([[0, 1, 2], [1, 3, 2], [4, 5, 3]])
    moved = start.copy()
    moved[0] = [1.2, 1.2, 0.0]  # across the edge 1-2: face 0 turns over
    moved[4] += [0.0, 0.1, 0.0]  # a small slide elsewhere that turns nothing
    fixed = keep_upright(start, moved, faces)
    np.testing.assert_array_equal(fixed[[0, 1, 2]], start[[0, 1, 2]])
    np.testing.assert_array_equal(fixed[4], moved[4])
    # against the last frame as shipped too: upright against start but turned against `previous`, it goes back
    previous = start.copy()
    previous[4] = [0.5, 1.5, 0.0]
    np.testing.assert_array_equal(keep_upright(start, moved, faces, previous)[[4, 5, 3]], start[[4, 5, 3]])


def test_a_mesh_a_little_off_its_surface_is_laid_onto_it_without_flips() -> None:
    """A sphere mesh registered a little off the reconstructed sphere (noisy radii) ends on it, all faces upright."""
    surface = trimesh.creation.icosphere(subdivisions=4, radius=0.5)
    mesh = trimesh.creation.icosphere(subdivisions=2, radius=0.5)
    vertices = np.asarray(mesh.vertices, dtype=np.float32)
    off = vertices * (1 + np.random.default_rng(0).uniform(-0.06, 0.06, (len(vertices), 1))).astype(np.float32)
    laid = lay_onto_surface(off, np.asarray(mesh.faces), surface)
    distance = np.abs(trimesh.proximity.signed_distance(surface, laid))
    before = np.abs(trimesh.proximity.signed_distance(surface, off))
    assert distance.max() < 1e-4 < before.mean()
    assert mesh_quality(np.stack([off, laid]), np.asarray(mesh.faces)).flipped_pct[1] == 0
