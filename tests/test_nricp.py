"""Our non-rigid ICP against trimesh's own ``nricp_amberg``: the same algorithm, the same answer."""

import numpy as np
import pytest
import trimesh
from trimesh.registration import nricp_amberg as trimesh_nricp

from backend.mesh.nricp import nricp_amberg


@pytest.mark.parametrize("use_faces", [False, True])
def test_registration_matches_trimesh(use_faces: bool) -> None:
    source = trimesh.creation.icosphere(subdivisions=2)
    rng = np.random.default_rng(0)
    bent = source.vertices * [1.3, 0.8, 1.0] + 0.2 * np.sin(3 * source.vertices[:, [1, 2, 0]])
    target = trimesh.Trimesh(bent + rng.normal(0, 0.01, bent.shape), source.faces, process=False)
    landmarks = np.arange(0, len(source.vertices), 7)
    steps = [[0.01, 1.0, 0.5, 3], [0.02, 0.5, 0.5, 3], [0.03, 0.25, 0.5, 3], [0.01, 0.0, 0.0, 3]]
    kwargs = dict(source_landmarks=landmarks, target_positions=bent[landmarks], steps=steps, distance_threshold=0.3,
                  use_faces=use_faces)
    ours = nricp_amberg(source.copy(), target.copy(), **kwargs)
    theirs = trimesh_nricp(source.copy(), target.copy(), **kwargs)
    assert np.abs(ours - source.vertices).max() > 0.1  # it moved
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
