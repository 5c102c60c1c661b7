"""Real animated assets as clip folders: Blender renders the views, we add exact ground truth.

Blender runs in its own process (``blender_gltf.py``): the `bpy` module of this Python, or a
Blender binary given with ``blender=``. Its evaluated meshes give consistent-topology ground
truth per frame; depth, mask and canonical maps are rasterised from them with our renderer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from backend.io.cameras import Camera
from backend.io.clip_folder import write_clip_folder, write_ground_truth
from backend.world.render import render_clip

SCRIPT = Path(__file__).with_name("blender_gltf.py")
REPO_ROOT = Path(__file__).resolve().parents[2]


class MeshSequence:
    """Frames of one consistent-topology mesh, looked up by their exact times (for rendering)."""

    texture = None

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, times: np.ndarray) -> None:
        self.vertices, self.faces, self.times = vertices, faces.astype(np.int64), np.asarray(times)
        self.canonical_vertices = vertices[0]
        self.face_part_ids = np.zeros(len(faces), dtype=np.int64)

    def vertices_at(self, t: float) -> np.ndarray:
        index = int(np.argmin(np.abs(self.times - t)))
        if abs(self.times[index] - t) > 1e-9:
            raise ValueError(f"no frame at t={t}")
        return self.vertices[index]


def blender_command(blender: str | None, args: list[str]) -> list[str]:
    if blender:
        return [blender, "-b", "--factory-startup", "--python", str(SCRIPT), "--", *args]
    return [sys.executable, str(SCRIPT), *args]


def write_gltf_clip(
    out: Path,
    gltf: Path,
    animation: str | None,
    views: int,
    frames: int,
    size: int,
    seed: int = 0,
    fps: float | None = None,
    blender: str | None = None,
    engine: str = "BLENDER_WORKBENCH",
    fov_deg: float = 40.0,
) -> dict[str, Any]:
    """Render ``gltf`` playing ``animation`` into a clip folder at ``out``; returns world.json's content."""
    gltf = Path(gltf)
    if not gltf.is_file():
        raise FileNotFoundError(f"{gltf}: no such glTF file")
    with tempfile.TemporaryDirectory(prefix="lim4d-gltf-") as tmp:
        args = ["--gltf", str(gltf), "--views", str(views), "--frames", str(frames), "--size", str(size),
                "--seed", str(seed), "--engine", engine, "--fov", str(fov_deg), "--out", tmp]
        if animation:
            args += ["--animation", animation]
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        done = subprocess.run(blender_command(blender, args), capture_output=True, text=True, env=env)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-8:])
            raise RuntimeError(f"Blender could not render {gltf.name}:\n{tail}")
        meta = json.loads((Path(tmp) / "render.json").read_text())
        meshes = np.load(Path(tmp) / "meshes.npz")
        rgba = np.stack([
            np.stack([np.asarray(Image.open(Path(tmp) / "rgba" / f"view_{v:02d}_frame_{f:04d}.png").convert("RGBA"))
                      for f in range(frames)])
            for v in range(views)
        ])
    cameras = [Camera.from_dict(c) for c in meta["cameras"]]
    times = meshes["times"]
    sequence = MeshSequence(meshes["vertices"], meshes["faces"], times)
    maps = render_clip(sequence, cameras, times)
    alpha = rgba[..., 3:].astype(np.float32) / 255
    composite = (rgba[..., :3] * alpha + 255 * (1 - alpha) + 0.5).astype(np.uint8)
    clip_fps = fps or frames / max(meta["duration_s"], 1e-6)  # real time by default
    source = {"source": "gltf", **{k: meta[k] for k in ("gltf", "animation", "duration_s", "normalisation", "engine")},
              "views": views, "frames": frames, "size": size, "seed": seed}
    write_clip_folder(out, composite, cameras, times, clip_fps, source)
    write_ground_truth(out, sequence.canonical_vertices, sequence.faces, sequence.vertices, times,
                       {"alpha": alpha[..., 0], "mask": maps.mask, "depth": maps.depth, "canonical": maps.canonical})
    return source
