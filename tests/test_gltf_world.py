"""Real animated glTF assets rendered in real Blender (own process) into the clip-folder format."""

from pathlib import Path

import numpy as np
import pytest

from conftest import run_backend

pytest.importorskip("bpy")


@pytest.mark.parametrize("asset", ["AnimatedMorphCube/AnimatedMorphCube.gltf", "RiggedFigure.glb"])
def test_asset_renders_with_matching_ground_truth(tmp_path: Path, shared_assets: Path, asset: str) -> None:
    """Morph targets and skinning; RiggedFigure also carries a mesh in a hidden collection."""
    out = tmp_path / "asset"
    gltf = shared_assets / asset
    done = run_backend("world", "--gltf", str(gltf), "--views", "2", "--frames", "4", "--size", "64", "--out", str(out))
    assert done.returncode == 0, done.stderr
    verts = np.load(out / "gt" / "vertices.npz")["vertices"]
    assert verts.shape[0] == 4 and verts.shape[2] == 3
    assert np.abs(verts - verts[0]).max() > 0.05, "the animation plays"
    assert np.abs(verts).max() <= 0.8 + 1e-5, "normalised to the world box"
    for view in range(2):
        maps = np.load(out / "gt" / f"view_{view:02d}.npz")
        blender_alpha = maps["alpha"] > 0.5
        iou = (blender_alpha & maps["mask"]).sum() / (blender_alpha | maps["mask"]).sum()
        assert iou > 0.9, f"Blender's render and our ground truth disagree (IoU {iou:.3f})"


def test_skinned_asset_and_unknown_animation(tmp_path: Path, shared_assets: Path) -> None:
    done = run_backend("world", "--gltf", str(shared_assets / "RiggedSimple.glb"), "--views", "1", "--frames", "3",
                       "--size", "64", "--out", str(tmp_path / "rig"))
    assert done.returncode == 0, done.stderr
    verts = np.load(tmp_path / "rig" / "gt" / "vertices.npz")["vertices"]
    assert np.abs(verts - verts[0]).max() > 0.05, "skinning is evaluated per frame"
    done = run_backend("world", "--gltf", str(shared_assets / "RiggedSimple.glb"), "--animation", "NoSuchClip",
                       "--views", "1", "--frames", "2", "--size", "64", "--out", str(tmp_path / "bad"))
    assert done.returncode == 2
    assert "NoSuchClip" in done.stderr and "Anim_0" in done.stderr
