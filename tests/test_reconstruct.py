"""`reconstruct` end to end on a world clip: every stage runs and the job folder is complete.

Geometry comes from the shipped LRM/LIM. The canonical models here are random-weight checkpoints
written for the test (trained ones are not shipped yet), so this checks the pipeline's mechanics
and outputs, not tracking quality (bench track measures that).
"""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from backend.io.clip_folder import read_clip_folder, write_clip_folder
from backend.mesh.level import silhouette_iou
from backend.models.checkpoints import load_checkpoint, save_checkpoint
from backend.models.lim import LIM
from backend.models.lrm import LRM
from backend.pipeline import output_positions
from backend.reconstruct import Models, Progress, Settings, fitted_frames, reconstruct
from conftest import REPO, over_noise, run_backend, write_views

SHIPPED = REPO / "backend" / "checkpoints"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("checkpoints")
    for name in ("lrm", "lim"):
        (folder / name).symlink_to(SHIPPED / name)
    config = load_checkpoint(SHIPPED / "lrm", "lrm").config.with_canonical()
    canonical = LRM(config)
    save_checkpoint(canonical, folder / "lrm_canonical", "lrm")
    save_checkpoint(LIM.from_lrm(canonical), folder / "lim_canonical", "lim")
    return folder


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-view, 5-frame 64² world clip folder, shared by the tests that only read it."""
    folder = tmp_path_factory.mktemp("clip") / "clip"
    assert run_backend("world", "--seed", "1000005", "--views", "4", "--frames", "5", "--size", "64",
                       "--out", str(folder)).returncode == 0
    return folder


def test_reconstruct_writes_a_complete_job_folder(tmp_path: Path, checkpoints: Path) -> None:
    clip = tmp_path / "clip"
    assert run_backend("world", "--seed", "1000005", "--views", "4", "--frames", "5", "--size", "64",
                       "--out", str(clip)).returncode == 0
    job = tmp_path / "job"
    done = run_backend("reconstruct", str(clip), "--out", str(job), "--checkpoints", str(checkpoints),
                       "--stride", "2", "--faces", "800", "--texture", "128", timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    mesh = np.load(job / "mesh.npz")
    n = len(mesh["vertices"])
    assert mesh["faces"].max() < n and mesh["uvs"].shape == (n, 2)
    frames = sorted((job / "frames").glob("frame_*.npy"))
    assert len(frames) == 5
    assert all(np.load(f).shape == (n, 3) and np.load(f).dtype == np.float32 for f in frames)
    np.testing.assert_array_equal(np.load(frames[0]), mesh["vertices"])  # frame 0 is the mesh itself
    manifest = json.loads((job / "manifest.json").read_text())
    assert manifest["frame_count"] == 5 and manifest["keyframes"] == [0, 2, 4]
    assert set(manifest["timings_s"]) >= {"lrm_lim", "marching_cubes", "decimation", "uv", "texture", "tracking"}
    assert len(list((job / "gaussians").glob("frame_*.ply"))) == 5
    for name in ("texture.png", "preview.png", "animation.glb", "preview.mp4"):
        assert (job / name).stat().st_size > 0


def test_reconstruct_without_canonical_models_says_so(tmp_path: Path) -> None:
    folder = tmp_path / "only_geometry"
    folder.mkdir()
    (folder / "lrm").symlink_to(SHIPPED / "lrm")
    done = run_backend("reconstruct", str(tmp_path), "--out", str(tmp_path / "job"), "--checkpoints", str(folder))
    assert done.returncode == 2 and "missing checkpoint folders" in done.stderr


def test_a_clip_that_is_not_there_is_named(tmp_path: Path) -> None:
    """A mistyped clip path says the file is missing (it used to read as a clip folder without cameras.json)."""
    missing = tmp_path / "walk_cycel.mp4"
    done = run_backend("reconstruct", str(missing), "--out", str(tmp_path / "job"))
    assert done.returncode == 2 and f"{missing}: no such file or folder" in done.stderr
    done = run_backend("reconstruct", "--views", str(missing), "--cameras", str(tmp_path / "cameras.json"), "--out",
                       str(tmp_path / "job"))
    assert done.returncode == 2 and "no such file or folder" in done.stderr
    assert not (tmp_path / "job").exists()


def test_a_frame_whose_surface_vanishes_keeps_the_mesh_in_place(tmp_path: Path, checkpoints: Path,
                                                                 small_clip: Path) -> None:
    """One weak frame (its field never reaches the mesh's level: here a blank triplane) costs that frame its
    motion, not the job: the mesh holds its last place there and every frame is still written."""
    clip = read_clip_folder(small_clip)
    models = Models.load(checkpoints)
    settings = Settings(stride=2, target_faces=800, texture_size=128, gaussians=False, fit_steps=0)
    geometry = fitted_frames(models, clip, settings, output_positions(5), Progress())
    geometry.planes[3] = torch.zeros_like(geometry.planes[3])  # a constant field: no isosurface at any level
    job = tmp_path / "job"
    manifest = reconstruct(clip, models, job, settings, geometry=geometry)
    frames = np.stack([np.load(job / "frames" / f"frame_{f:04d}.npy") for f in range(5)])
    assert np.isfinite(frames).all() and manifest["quality"]["frames_kept_still"] >= 1
    assert (job / "animation.glb").stat().st_size > 0


def test_frames_whose_surface_is_far_from_the_meshs_size_hold_it_still(tmp_path: Path, checkpoints: Path,
                                                                        small_clip: Path) -> None:
    """Every frame's surface is about the frame-0 mesh's size; asking for 5-10x that marks each one a weak frame,
    so the mesh stays exactly where frame 0 put it, and their footage (which shows the object moving) does not
    paint the texture: it is the first frame's alone."""
    clip = read_clip_folder(small_clip)
    models = Models.load(checkpoints)
    settings = Settings(stride=2, target_faces=800, texture_size=128, gaussians=False, fit_steps=0,
                        surface_extent_range=(5.0, 10.0))
    job = tmp_path / "job"
    manifest = reconstruct(clip, models, job, settings)
    frames = np.stack([np.load(job / "frames" / f"frame_{f:04d}.npy") for f in range(5)])
    assert manifest["quality"]["frames_kept_still"] == 4
    np.testing.assert_array_equal(frames, np.broadcast_to(frames[0], frames.shape))
    reconstruct(clip, models, tmp_path / "first", replace(settings, texture_over_time=False))
    repainted, first = (np.asarray(Image.open(folder / "texture.png")) for folder in (job, tmp_path / "first"))
    assert (repainted != first).any(axis=-1).mean() < 0.002  # the same but for a few texels of float noise


def test_a_few_specks_do_not_swell_a_frames_size() -> None:
    """The weak-frame guard's size of a surface: specks of haze far off (as monocular frames carry) leave it as the
    object's, where the bounding box of every point doubles; a surface that really grew still measures larger."""
    from backend.reconstruct import surface_extent

    rng = np.random.default_rng(0)
    body = rng.uniform(-0.5, 0.5, size=(2000, 3))
    specks = rng.uniform(-1.5, 1.5, size=(20, 3))
    size = float(np.linalg.norm(np.ptp(body, axis=0)))
    with_specks = np.concatenate([body, specks])
    assert np.linalg.norm(np.ptp(with_specks, axis=0)) > 1.6 * size  # the old measure: a swollen frame
    assert 0.9 * size < surface_extent(with_specks) < 1.05 * size
    assert surface_extent(2 * body) > 1.8 * size


def test_the_repaint_takes_whole_frames_not_held_ones_and_at_most_its_share() -> None:
    from backend.reconstruct import painting_frames

    retimed = output_positions(9, retime=2.0)  # 0, 0.5, 1, ... 8: only whole positions have footage
    assert painting_frames(retimed, 9, 0, set(), 64) == [2, 4, 6, 8, 10, 12, 14, 16]
    assert painting_frames(retimed, 9, 0, {4, 6}, 64) == [2, 8, 10, 12, 14, 16]  # held still: no paint
    spread = painting_frames(np.arange(200.0), 200, 0, set(), 10)
    assert len(spread) == 10 and spread[0] == 1 and spread[-1] == 199 and np.ptp(np.diff(spread)) <= 1


def test_mask_clips_let_a_job_reconstruct_footage_no_matte_can_read(tmp_path: Path) -> None:
    """Four views over coloured noise (the automatic matte finds nothing there) and a mask clip per view, through
    the CLI (`--views ... --mask ...`): the mesh outlines the true masks from every input camera."""
    cameras, times, filmed, truth = over_noise(1000002, views=4, frames=3)
    write_clip_folder(tmp_path / "clip", filmed, cameras, times, 12.0, {"source": "test"})
    views, masks = write_views(tmp_path / "clip", filmed, truth)
    job = tmp_path / "job"
    done = run_backend("reconstruct", "--views", *map(str, views),
                       "--cameras", str(tmp_path / "clip" / "cameras.json"), "--mask", *map(str, masks),
                       "--out", str(job), "--quality", "preview", "--faces", "800", "--texture", "64", timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    mesh = np.load(job / "mesh.npz")
    outline = silhouette_iou(mesh["vertices"], mesh["faces"], cameras, truth[:, 0])
    assert outline > 0.9, outline  # 0.97 (without the masks the job stops: nothing is matted)
