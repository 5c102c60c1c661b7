"""`python -m backend bench import`: how fast the add-on turns streamed frames into shape keys, and scrubs.

Runs the add-on's own importer (addon/importer.py, loaded from its file) in a Blender process: a mesh of
V vertices arrives, then F frames, each added as a one-hot keyed shape key as it would be from the
stream; then `frame_set` across the timeline with the depsgraph evaluating the shape keys.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def measure(vertices: int, frames: int) -> dict:
    """Inside Blender: time the import of ``frames`` frames of ``vertices`` vertices and the scrubbing."""
    import bpy
    import numpy as np

    spec = importlib.util.spec_from_file_location("lim4d_importer", REPO / "addon" / "importer.py")
    importer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(importer)
    rng = np.random.default_rng(0)
    side = int(np.ceil(np.sqrt(vertices)))
    grid = np.stack(np.meshgrid(np.arange(side), np.arange(side), indexing="ij"), -1).reshape(-1, 2)[:vertices]
    base = np.concatenate([grid / side, np.zeros((vertices, 1))], 1).astype(np.float32)
    quads = [(i * side + j, (i + 1) * side + j, i * side + j + 1) for i in range(side - 1) for j in range(side - 1)]
    faces = np.array([f for f in quads if max(f) < vertices], dtype=np.int32)
    png = _png(bpy)
    data = {"vertices": base, "faces": faces, "uvs": base[:, :2], "texture": png}
    moves = [base + 0.01 * rng.standard_normal(base.shape).astype(np.float32) for _ in range(8)]
    scene = bpy.context.scene
    started = time.perf_counter()
    obj = importer.build_object("bench", "bench", data, scene, 1)
    mesh_s = time.perf_counter() - started
    started = time.perf_counter()
    for index in range(frames):
        importer.add_frame(obj, index, moves[index % len(moves)])
    import_s = time.perf_counter() - started
    importer.follow_clip_timing(scene, 1, frames, 24.0)
    depsgraph = bpy.context.evaluated_depsgraph_get()
    sample = list(range(1, frames + 1, max(1, frames // 60)))
    started = time.perf_counter()
    for frame in sample:
        scene.frame_set(frame)
        obj.evaluated_get(depsgraph)
    frame_set_ms = 1000 * (time.perf_counter() - started) / len(sample)
    check = importer.evaluated_positions(obj, 1 + 5)
    return {"vertices": vertices, "frames": frames, "mesh_s": round(mesh_s, 3), "import_s": round(import_s, 3),
            "import_ms_per_frame": round(1000 * import_s / frames, 2), "frame_set_ms": round(frame_set_ms, 2),
            "scrub_error": float(np.abs(check - moves[5 % len(moves)]).max()), "blender": bpy.app.version_string}


def _png(bpy) -> bytes:
    image = bpy.data.images.new("bench_texture", 64, 64)
    path = Path(bpy.app.tempdir or "/tmp") / "lim4d_bench_texture.png"
    image.filepath_raw = str(path)
    image.file_format = "PNG"
    image.save()
    return path.read_bytes()


def run(vertices: int, frames: int, results: Path, json_path: Path | None) -> int:
    from backend.bench.results import append_row, device_description

    done = subprocess.run([sys.executable, "-c", f"import json; from backend.bench.blender_import import measure; "
                           f"print('IMPORT ' + json.dumps(measure({vertices}, {frames})))"],
                          cwd=REPO, capture_output=True, text=True, timeout=1800)
    line = next((x for x in done.stdout.splitlines() if x.startswith("IMPORT ")), None)
    if line is None:
        raise RuntimeError(f"the Blender import bench failed: {done.stderr[-2000:]}")
    figures = json.loads(line[7:]) | {"device": device_description()}
    print(json.dumps(figures, indent=1))
    if json_path:
        json_path.write_text(json.dumps(figures, indent=1))
    append_row(results, "Blender import and scrubbing (bench import)",
               ["date", "device", "Blender", "frames × vertices", "import (s)", "per frame (ms)", "frame_set (ms)",
                "scrub error"],
               [time.strftime("%Y-%m-%d"), figures["device"], figures["blender"], f"{frames} × {vertices}",
                str(figures["import_s"]), str(figures["import_ms_per_frame"]), str(figures["frame_set_ms"]),
                f"{figures['scrub_error']:.1e}"])
    return 0
