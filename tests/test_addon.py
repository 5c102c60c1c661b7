"""The extension against a real backend, inside real Blender: install the built zip, reconstruct a world
clip through the operators, scrub, export, kill the backend mid-job and retry, reopen a half-imported .blend.

The driver (backend/drive_extension.py) runs in its own Blender process with BLENDER_USER_RESOURCES in a
temporary folder; it reports what it found and this test judges it.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.io.footage import read_footage
from backend.io.video import write_mp4
from conftest import REPO, run_backend

bpy_spec = pytest.importorskip("bpy")
BLENDER_EXT = Path(bpy_spec.__file__).parents[2] / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"


# Blender 4.2 LTS too, when an interpreter with bpy 4.2 is given (pip install bpy==4.2.0 numpy==1.26.4 in
# a second Python 3.11 venv, then LIM4D_BPY_42=/path/to/that/python)
BLENDERS = [sys.executable] + ([os.environ["LIM4D_BPY_42"]] if os.environ.get("LIM4D_BPY_42") else [])


@pytest.fixture(scope="module", params=BLENDERS, ids=lambda p: "bpy" if p == sys.executable else "bpy-4.2")
def report(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> dict:
    root = tmp_path_factory.mktemp("addon")
    built = subprocess.run([sys.executable, str(BLENDER_EXT), "build", "--source-dir", str(REPO), "--output-dir", str(root)],
                           capture_output=True, text=True, timeout=180)
    assert built.returncode == 0, built.stdout + built.stderr
    clip = root / "clip"
    assert run_backend("world", "--seed", "1000004", "--views", "3", "--frames", "5", "--size", "64",
                       "--out", str(clip)).returncode == 0
    frames = read_footage(clip / "view_00.mp4").frames  # view 0 as a PNG sequence, for the monocular job
    (root / "sequence").mkdir()
    Image.new("RGB", (8, 8)).save(root / "sequence" / "shot_0100.png")  # another take's last image: not part of it
    for index, frame in enumerate(frames):
        Image.fromarray(frame).save(root / "sequence" / f"shot_{index + 101:04d}.png")
    early = read_footage(clip / "view_02.mp4").frames  # view 2's camera started 2 frames before the others
    write_mp4(root / "early_view_02.mp4", np.concatenate([np.full((2, *early.shape[1:]), 128, np.uint8), early]), 24)
    options = {"archive": str(next(root.glob("lim4d-*.zip"))), "python": sys.executable, "clip": str(clip),
               "out": str(root / "out"), "stride": 2, "quality": "preview", "kill_backend": True, "reopen": True, "cancel": True,
               "monocular": True, "mask_view": 1, "sequence": str(root / "sequence" / "shot_0101.png"),
               "slide_view": {"view": 2, "video": str(root / "early_view_02.mp4"), "early": 2}}
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(root / "user"), "PYTHONPATH": str(REPO)}
    done = subprocess.run([request.param, "-m", "backend.drive_extension", json.dumps(options)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0 and (root / "out" / "report.json").is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((root / "out" / "report.json").read_text())


def test_import_streams_a_scrubbable_textured_shape_key_animation(report: dict) -> None:
    assert report["state"] == "done", report.get("error")
    assert report["frames"] == 5 and report["shape_keys"] == 5 + 1  # Basis + one per frame
    assert report["scrub_error"] < 1e-5  # frame_set reproduces the streamed vertices
    assert report["uv_layers"] == 1 and report["texture"]["packed"] and report["texture"]["size"][0] > 0
    # the texture repainted from every tracked frame replaced the first one, under the same name
    assert report["texture"]["final"] == 1 and report["texture"]["difference_to_final"] <= 1.01 / 255
    assert report["texture"]["name"] == f"lim4d_{report['texture']['key']}"
    assert report["scene_range"] == [1, 5]


def test_a_bound_mask_clip_goes_with_its_view(report: dict) -> None:
    """A mask clip bound to the second camera's binding travels in the job's request beside its view (the
    others left to the matte), and the backend took the job (the import above finished)."""
    masks = report["request_masks"]
    assert masks[0] is None and masks[2] is None and masks[1].endswith("mask_01.mp4")


def test_a_clip_slid_along_the_timeline_is_paired_as_it_plays(report: dict) -> None:
    """The third view's camera started 2 frames early and its clip was slid back 2 frames to sync it: the job pairs
    its frame f + 2 with the others' frame f (and the import above finished)."""
    assert report["request_view_offsets"] == [0, 0, 2]


@pytest.mark.parametrize("fmt", ["GLTF", "FBX", "ABC", "USD"])
def test_each_export_round_trips(report: dict, fmt: str) -> None:
    result = report["exports"][fmt]
    assert "failure" not in result, result
    assert result["error"] < 1e-3 and result["bytes"] > 0


def test_a_killed_backend_is_reported_frames_kept_and_retry_completes(report: dict) -> None:
    killed = report["killed"]
    assert killed["state"] == "failed" and "backend" in killed["error"]
    assert killed["frames_kept"] >= 2
    retried = report["retried"]
    assert retried["state"] == "done" and retried["frames"] == retried["expected"] and retried["same_object"]


def test_a_reopened_blend_finishes_its_import(report: dict) -> None:
    reopened = report["reopened"]
    assert reopened["frames_at_save"] < reopened["expected"] and reopened["frames"] == reopened["expected"]
    assert reopened["texture_final"] == 1 and reopened["texture_difference"] <= 1.01 / 255  # the repaint arrived too


def test_cancel_stops_the_job_and_keeps_what_arrived(report: dict) -> None:
    cancelled = report["cancelled"]
    assert cancelled["state"] == "cancelled" and 1 <= cancelled["frames_kept"] < cancelled["expected"]
    assert cancelled["seconds"] < 5


def test_creating_the_backend_environment_honours_offline_blender(report: dict) -> None:
    made = report["create_environment"]
    if made["online_access"]:
        pytest.skip("this Blender allows online access; the refusal path is not reachable")
    assert made["result"] == ["CANCELLED"] and "Online Access" in made["message"]


def test_monocular_sources_and_placement_in_front_of_the_camera(report: dict) -> None:
    """A selected VSE movie strip, the active movie clip and a file each resolve to the video and the scene
    frame where it starts, a PNG-sequence clip to its first image; a monocular job from that sequence (at the
    scene's frame rate) imports every frame, in front of the scene camera."""
    mono = report["monocular"]
    first_image = str(Path(mono["video"]).parents[1] / "sequence" / "shot_0101.png")
    assert mono["sources"] == {"STRIPS": [mono["video"], 7], "CLIP": [mono["video"], 3], "FILE": [mono["video"], 1],
                               "SEQUENCE": [first_image, 1]}
    assert mono["request_fps"] == mono["scene_fps"] == 24
    assert mono["state"] == "done", mono["error"]
    assert mono["frames"] == mono["expected"] > 0
    x, y, z = mono["object_in_camera"]
    assert z < -1.0 and abs(x) < 0.2 * -z and abs(y) < 0.2 * -z  # ahead of the camera (its -Z), near its axis
    assert 5 < mono["elevation_deg"] < 20  # the camera looks down by 12 degrees
    assert mono["request_mask"].endswith("mask_00.mp4")  # the panel's mask clip went with the job, which finished
