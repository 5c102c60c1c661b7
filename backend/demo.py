"""`make demo`: the whole job on the bundled models, through the real extension in headless Blender.

1. render a procedural multi-view clip with ground truth and its contact sheet;
2. reconstruct it with the bundled LRM + LIM and compare with the ground truth from novel cameras the
   models never saw: `reconstruction.png`;
3. build the extension zip with Blender's own tool, install it into a scratch Blender user folder,
   start the backend through it, bind a Blender camera to each view, press Reconstruct, stream the
   mesh and its frames in as shape keys, and write `demo.blend`, `demo.glb`, `demo_contact.png`
   (input | Blender render from the input camera | from the side) and `demo_turntable.mp4`;
   then a real monocular clip (DAVIS bear, when ../shared/data is here) through the Monocular mode:
   `demo_monocular_contact.png`;
4. optionally (`gltf=True`) render a real animated glTF asset in Blender into the clip-folder format.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from backend.io.clip_folder import contact_sheet, read_clip_folder
from backend.world import make_object
from backend.world.clip import write_world_clip

REPO = Path(__file__).resolve().parents[1]
CHECKPOINTS = REPO / "backend" / "checkpoints"
SHARED_ASSET = REPO.parent / "shared" / "data" / "assets" / "Fox.glb"
DAVIS_CLIP = REPO.parent / "shared" / "data" / "videos" / "davis" / "bear.gif"
DEMO_SEED = 1_000_003


def _stage(message: str, started: float) -> None:
    print(f"[demo] {message} ({time.perf_counter() - started:.1f}s)", flush=True)


def reconstruct_world_clip(folder: Path, out: Path, checkpoints: Path = CHECKPOINTS) -> float:
    """Reconstruct the clip in ``folder``; writes out/reconstruction.png, returns novel-view PSNR_FG."""
    from backend.bench.interp import psnr
    from backend.io.cameras import ring_cameras
    from backend.models.checkpoints import load_checkpoint
    from backend.pipeline import reconstruct_frames
    from backend.render.volume import render_triplane
    from backend.world.render import render_clip

    lrm, lim = load_checkpoint(checkpoints / "lrm", "lrm"), load_checkpoint(checkpoints / "lim", "lim")
    clip = read_clip_folder(folder)
    result = reconstruct_frames(lrm, lim, clip.frames, clip.cameras, clip.times, stride=4)
    size = lrm.config.image_size
    novel = ring_cameras(2, np.random.default_rng(99), size=size)
    truth = render_clip(make_object(DEMO_SEED), novel, clip.times, supersample=2)
    truth_rgb = truth.composite().astype(np.float32) / 255
    rows, scores = [], []
    for f, planes in enumerate(result.planes):
        image = render_triplane(lrm, planes, novel)["rgb"].clamp(0, 1).numpy()
        rows.append(image)
        scores += [psnr(image[v], truth_rgb[v, f], truth.mask[v, f]) for v in range(len(novel))]
    predicted = np.stack(rows, axis=1)  # (V, F, H, W, 3)
    both = np.concatenate([truth_rgb, predicted], axis=0)  # rows: truth views, then reconstructions
    Image.fromarray((contact_sheet(both) * 255).round().astype(np.uint8)).save(out / "reconstruction.png")
    return float(np.mean(scores))


def build_extension(out: Path) -> Path:
    """The installable zip, built by Blender's own `extension build`."""
    import bpy  # noqa: F401 (only to find Blender's scripts folder)

    cli = Path(sys.modules["bpy"].__file__).parents[2] / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
    out.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, str(cli), "build", "--source-dir", str(REPO), "--output-dir", str(out)],
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"extension build failed: {done.stdout[-1000:]}{done.stderr[-1000:]}")
    return next(out.glob("lim4d-*.zip"))


def drive_extension(archive: Path, clip: Path, out: Path, size: int, monocular: Path | None = None) -> dict:
    """Run backend/drive_extension.py in its own Blender process; returns its report."""
    options = {"archive": str(archive), "python": sys.executable, "clip": str(clip), "out": str(out / "blender"),
               "stride": 4, "quality": "final", "formats": ["GLTF"], "demo": {"size": size, "columns": 6}}
    if monocular is not None:
        options["demo_monocular"] = str(monocular)
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(out / "blender_user"), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "backend.drive_extension", json.dumps(options)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1800)
    report_path = out / "blender" / "report.json"
    if done.returncode != 0 or not report_path.is_file():
        raise RuntimeError(f"the Blender session failed: {done.stdout[-1500:]}{done.stderr[-1500:]}")
    report = json.loads(report_path.read_text())
    if report.get("state") != "done":
        raise RuntimeError(f"the import ended {report.get('state')}: {report.get('error')}")
    for name, target in (("result.blend", "demo.blend"), ("result.glb", "demo.glb"), ("demo_contact.png", "demo_contact.png"),
                         ("demo_turntable.mp4", "demo_turntable.mp4")):
        shutil.copy2(out / "blender" / name, out / target)
    if monocular is not None:
        mono = report.get("monocular_demo", {})
        if mono.get("state") != "done":
            raise RuntimeError(f"the monocular import ended {mono.get('state')}: {mono.get('error')}")
        shutil.copy2(out / "blender" / "davis_contact.png", out / "demo_monocular_contact.png")
    return report


def run(out: Path, views: int = 4, frames: int = 16, size: int = 128, gltf: bool = False,
        monocular: Path | None = DAVIS_CLIP) -> int:
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    info = write_world_clip(out / "world", seed=DEMO_SEED, views=views, frames=frames, size=size)
    _stage(f"world clip: {info['family']} ({info['motion']}), {views} views x {frames} frames -> "
           f"{out / 'world'}; contact sheet {out / 'world' / 'contact.png'}", started)
    started = time.perf_counter()
    score = reconstruct_world_clip(out / "world", out)
    _stage(f"the bundled LRM + LIM alone (keyframes every 4 frames, before the job's footage fit): novel-view "
           f"PSNR_FG {score:.2f} dB; truth (top rows) vs reconstruction in {out / 'reconstruction.png'}", started)
    started = time.perf_counter()
    archive = build_extension(out / "dist")
    _stage(f"extension built with Blender's own tool: {archive}", started)
    started = time.perf_counter()
    if monocular is not None and not monocular.is_file():
        print(f"[demo] {monocular} is not here (../shared/data): skipping the monocular part", flush=True)
        monocular = None
    report = drive_extension(archive, out / "world", out, size=max(size, 128), monocular=monocular)
    _stage(f"in Blender: installed the zip, started the backend, imported {report['frames']} frames as "
           f"{report['shape_keys']} shape keys ({report['seconds_to_first_frame']:.1f}s to the first frame, "
           f"{report['seconds_total']:.1f}s in all; scrub error {report['scrub_error']:.1e}; glTF re-import error "
           f"{report['exports']['GLTF'].get('error', float('nan')):.1e}) -> {out / 'demo.blend'}, {out / 'demo.glb'}, "
           f"{out / 'demo_contact.png'}, {out / 'demo_turntable.mp4'}", started)
    if monocular is not None:
        mono = report["monocular_demo"]
        print(f"[demo] monocular: {mono['video']} (one camera) -> matte, framing, generated views, LRM + LIM, "
              f"tracked mesh: {mono['frames']} frames imported in {mono['seconds_total']:.1f}s, placed in front of "
              f"its camera; input | that camera | the side in {out / 'demo_monocular_contact.png'}", flush=True)
    if gltf and SHARED_ASSET.is_file():
        from backend.world.gltf_clip import write_gltf_clip

        started = time.perf_counter()
        write_gltf_clip(out / "fox", SHARED_ASSET, "Walk", views=4, frames=8, size=size)
        _stage(f"glTF clip: Fox (Walk) rendered in Blender -> {out / 'fox'}", started)
    print("[demo] done.")
    return 0
