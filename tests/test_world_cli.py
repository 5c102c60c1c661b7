"""`python -m backend world` as a real process: the clip folder it writes reads back exactly."""

import json
from pathlib import Path

import numpy as np
from PIL import Image

from backend.io.clip_folder import read_clip_folder
from backend.world import make_object
from backend.world.clip import clip_cameras
from conftest import run_backend


def test_world_command_writes_a_complete_folder(tmp_path: Path) -> None:
    out = tmp_path / "clip"
    done = run_backend("world", "--seed", "3", "--views", "2", "--frames", "5", "--size", "64", "--out", str(out))
    assert done.returncode == 0, done.stderr
    clip = read_clip_folder(out)
    assert clip.frames.shape == (2, 5, 64, 64, 3)
    for ours, expected in zip(clip.cameras, clip_cameras(3, 2, 64), strict=True):
        np.testing.assert_allclose(ours.world_to_camera, expected.world_to_camera, atol=1e-12)
        np.testing.assert_allclose(ours.K, expected.K, atol=1e-12)
    obj = make_object(3)
    gt = np.load(out / "gt" / "vertices.npz")
    np.testing.assert_allclose(gt["vertices"], np.stack([obj.vertices_at(t) for t in clip.times]), atol=1e-6)
    mesh = np.load(out / "gt" / "mesh.npz")
    np.testing.assert_array_equal(mesh["faces"], obj.faces)
    maps = np.load(out / "gt" / "view_01.npz")
    assert maps["depth"].shape == (5, 64, 64) and maps["canonical"].shape == (5, 64, 64, 3)
    # the video shows the object where the ground-truth mask says it is
    dark = clip.frames[1].min(axis=-1) < 200
    iou = (dark & maps["mask"]).sum() / (dark | maps["mask"]).sum()
    assert iou > 0.7
    assert Image.open(out / "contact.png").size == (5 * 64, 2 * 64)
    assert json.loads((out / "world.json").read_text())["seed"] == 3


def test_world_command_rejects_odd_sizes_clearly(tmp_path: Path) -> None:
    done = run_backend("world", "--seed", "1", "--views", "1", "--frames", "2", "--size", "63", "--out", str(tmp_path))
    assert done.returncode == 2
    assert "even" in done.stderr and "Traceback" not in done.stderr
