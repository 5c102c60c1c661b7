"""`bench track`: tracked meshes against ground-truth correspondences on evaluation world clips.

Per seed: a 4-view, 32-frame clip is reconstructed (`reconstruct`). Each tracked vertex is tied
to the ground-truth surface point it starts on (closest point on the t = 0 mesh, as barycentric
coordinates of a ground-truth triangle); that point's true trajectory is then known exactly.
Reported: vertex error (mean, 95th percentile) in % of the bounding-box diagonal, flipped
triangles, Chamfer distance per frame to the ground-truth mesh, and PSNR of the tracked
textured mesh vs the per-frame (untracked) triplane rendering, both anti-aliased as the ground truth
is (``SUPERSAMPLE``) and judged against it from held-out cameras: over the true foreground (the issue's
figure) and over the whole image (which also counts a surface spilling past the true outline).
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch.nn.functional as F
import trimesh
from PIL import Image
from scipy.spatial import cKDTree

from backend.bench.interp import psnr
from backend.bench.results import append_row, device_description, today
from backend.io.cameras import Camera, ring_cameras
from backend.io.clip_folder import ClipFolder, read_clip_folder
from backend.mesh.proximity import closest_points
from backend.mesh.track import mesh_quality
from backend.pipeline import output_positions
from backend.reconstruct import Models, Progress, Settings, fitted_frames, reconstruct
from backend.render.textured import render_textured
from backend.render.volume import render_triplane
from backend.world import make_object
from backend.world.clip import write_world_clip
from backend.world.render import render_clip

FRAMES, VIEWS, SIZE = 32, 4, 64
# samples a pixel along each axis when the tracked mesh and the triplane are rendered for judging: the world's
# ground truth is rendered at 2 and box-filtered (Blender's anti-aliases too); one sample a pixel drew the
# mesh's outline all or nothing, which cost it 0.66 dB PSNR_FG against the truth (session 24)
SUPERSAMPLE = 2


def chamfer(a: np.ndarray, mesh: trimesh.Trimesh, samples: int = 5000) -> float:
    """Symmetric mean closest-point distance between points ``a`` and the surface of ``mesh`` (scene units)."""
    b = np.asarray(trimesh.sample.sample_surface(mesh, samples, seed=0)[0])
    d_ab = cKDTree(b).query(a)[0].mean()
    d_ba = cKDTree(a).query(b)[0].mean()
    return float((d_ab + d_ba) / 2)


def render_volume(lrm, planes, cameras: list[Camera], supersample: int = SUPERSAMPLE) -> np.ndarray:
    """The triplane's RGB (V, H, W, 3) rendered at ``supersample`` samples a pixel along each axis, box-filtered."""
    big = [c.resized(c.width * supersample, c.height * supersample) for c in cameras]
    rgb = render_triplane(lrm, planes, big)["rgb"].clamp(0, 1).permute(0, 3, 1, 2)
    return F.avg_pool2d(rgb, supersample).permute(0, 2, 3, 1).numpy()


@dataclass
class TrackCase:
    """One clip to track: its input views, the true mesh sequence, and held-out views of the truth."""

    name: str
    clip: ClipFolder  # the views the job reads
    truth: object  # vertices_at(t), faces, canonical_vertices: one topology through time
    held_out: list[Camera]
    truth_rgb: np.ndarray  # (V, F, H, W, 3) in [0, 1], over white
    truth_mask: np.ndarray  # (V, F, H, W) bool


def world_case(seed: int, footage_size: int = SIZE) -> TrackCase:
    """A world seed's clip; the job's footage at ``footage_size`` px (its models still read SIZE), judged at SIZE."""
    obj = make_object(seed)
    with tempfile.TemporaryDirectory(prefix="lim4d-track-") as tmp:
        write_world_clip(Path(tmp), seed, VIEWS, FRAMES, footage_size)
        clip = read_clip_folder(tmp)
    held_out = ring_cameras(2, np.random.default_rng([seed, 17]), size=SIZE)
    truth = render_clip(obj, held_out, clip.times, supersample=2)
    return TrackCase(str(seed), clip, obj, held_out, truth.composite().astype(np.float32) / 255, truth.mask)


def gltf_case(asset: Path, footage_size: int = SIZE) -> TrackCase:
    """A real animated asset rendered by Blender from VIEWS + 2 cameras at ``footage_size`` px: the first VIEWS are
    the input, the other two judge (averaged down to SIZE); the ground truth is Blender's evaluated mesh at every
    frame (one topology)."""
    from backend.world.gltf_clip import MeshSequence, write_gltf_clip

    if footage_size % SIZE:
        raise ValueError(f"footage size {footage_size} is not a multiple of the judged size {SIZE}")
    factor = footage_size // SIZE
    with tempfile.TemporaryDirectory(prefix="lim4d-track-") as tmp:
        write_gltf_clip(Path(tmp), asset, None, VIEWS + 2, FRAMES, footage_size)
        every = read_clip_folder(tmp)
        vertices = np.load(Path(tmp) / "gt" / "vertices.npz")["vertices"].astype(np.float64)
        faces = np.load(Path(tmp) / "gt" / "mesh.npz")["faces"]
        alpha = np.stack([np.load(Path(tmp) / "gt" / f"view_{v:02d}.npz")["alpha"] for v in range(VIEWS, VIEWS + 2)])
    clip = ClipFolder(every.frames[:VIEWS], every.cameras[:VIEWS], every.times, every.fps)
    judges = every.frames[VIEWS:].astype(np.float32) / 255
    if factor > 1:  # box-filtered down: the same as rendering at SIZE with factor x factor samples a pixel
        judges = judges.reshape(*judges.shape[:2], SIZE, factor, SIZE, factor, 3).mean(axis=(3, 5))
        alpha = alpha.reshape(*alpha.shape[:2], SIZE, factor, SIZE, factor).mean(axis=(3, 5))
    return TrackCase(asset.name, clip, MeshSequence(vertices, faces, every.times),
                     [c.resized(SIZE, SIZE) for c in every.cameras[VIEWS:]], judges, alpha > 0.5)


@dataclass
class TrackedJob:
    """What a reconstruction job wrote that the judging reads."""

    tracked: np.ndarray  # (F, N, 3) vertices at every frame
    faces: np.ndarray
    uvs: np.ndarray
    texture: np.ndarray  # (h, w, 3) uint8
    timings: dict[str, float]


def run_job(clip: ClipFolder, models: Models, settings: Settings, geometry) -> TrackedJob:
    """``reconstruct`` on ``clip`` from precomputed triplanes ``geometry`` (one per frame) into a temporary job folder."""
    with tempfile.TemporaryDirectory(prefix="lim4d-track-") as tmp:
        job = Path(tmp) / "job"
        timings = reconstruct(clip, models, job, settings, geometry=geometry)["timings_s"]
        mesh = np.load(job / "mesh.npz")
        tracked = np.stack([np.load(job / "frames" / f"frame_{f:04d}.npy") for f in range(len(geometry.planes))])
        texture = np.array(Image.open(job / "texture.png").convert("RGB"))  # writable, for torch
    return TrackedJob(tracked, mesh["faces"], mesh["uvs"], texture, timings)


def vertex_errors(truth, times: np.ndarray, tracked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame and vertex, the distance (% of the truth's bounding-box diagonal) from each tracked vertex to the true
    surface point it started on (closest point on the truth at ``times[0]``, carried by its barycentric coordinates),
    and the same for a mesh that never moves: two (F, N) arrays."""
    truth0 = trimesh.Trimesh(truth.vertices_at(times[0]), truth.faces, process=False)
    closest, _, triangle = closest_points(truth0, tracked[0])
    bary = trimesh.triangles.points_to_barycentric(truth0.triangles[triangle], closest)
    diagonal = np.linalg.norm(np.ptp(truth.canonical_vertices, axis=0))
    errors, static = [], []
    for f, t in enumerate(times):
        truth_points = (bary[..., None] * truth.vertices_at(t)[truth.faces[triangle]]).sum(axis=1)
        errors.append(np.linalg.norm(tracked[f] - truth_points, axis=1) / diagonal * 100)
        static.append(np.linalg.norm(tracked[0] - truth_points, axis=1) / diagonal * 100)
    return np.stack(errors), np.stack(static)


def evaluate_case(case: TrackCase, models: Models, settings: Settings) -> dict[str, float]:
    clip, obj, held_out = case.clip, case.truth, case.held_out
    geometry = fitted_frames(models, clip, settings, output_positions(FRAMES), Progress())  # as the job makes it
    job = run_job(clip, models, settings, geometry)
    tracked, faces, uvs, texture, timings = job.tracked, job.faces, job.uvs, job.texture, job.timings
    errors, static = vertex_errors(obj, clip.times, tracked)
    chamfers = []
    lrm = models.lrm
    psnr_tracked, psnr_untracked, full_tracked, full_untracked = [], [], [], []
    for f, t in enumerate(clip.times):
        chamfers.append(chamfer(tracked[f], trimesh.Trimesh(obj.vertices_at(t), obj.faces, process=False)))
        untracked = render_volume(lrm, geometry.planes[f], held_out)
        gt, mask = case.truth_rgb[:, f], case.truth_mask[:, f]
        rendered = [render_textured(tracked[f], faces, uvs, texture, camera, SUPERSAMPLE) for camera in held_out]
        psnr_tracked.append([psnr(rendered[v], gt[v], mask[v]) for v in range(len(held_out))])
        psnr_untracked.append([psnr(untracked[v], gt[v], mask[v]) for v in range(len(held_out))])
        # the whole image too: PSNR over the true foreground alone never sees a mesh spill past the outline
        full_tracked.append([psnr(rendered[v], gt[v]) for v in range(len(held_out))])
        full_untracked.append([psnr(untracked[v], gt[v]) for v in range(len(held_out))])
    return {
        "vertex_error_mean_pct": float(errors.mean()),
        "vertex_error_p95_pct": float(np.percentile(errors, 95)),
        "vertex_error_static_pct": float(np.mean(static)),
        "flipped_pct": float(np.mean(mesh_quality(tracked, faces).flipped_pct)),
        "chamfer": float(np.mean(chamfers)),
        "psnr_tracked": float(np.mean(psnr_tracked)),
        "psnr_untracked": float(np.mean(psnr_untracked)),
        "psnr_tracked_full": float(np.mean(full_tracked)),
        "psnr_untracked_full": float(np.mean(full_untracked)),
        **{f"seconds_{stage}": timings.get(stage, 0.0) for stage in ("marching_cubes", "decimation", "uv", "texture", "repaint")},
        "seconds_tracking_per_frame": timings.get("tracking", 0.0) / (FRAMES - 1),
        "vertex_error_per_frame_pct": errors.mean(axis=1).tolist(),
        "psnr_tracked_per_frame": np.mean(psnr_tracked, axis=1).tolist(),
        "psnr_untracked_per_frame": np.mean(psnr_untracked, axis=1).tolist(),
        "static_error_per_frame_pct": np.mean(static, axis=1).tolist(),
    }


def run(seeds: list[int], checkpoints: Path, results: Path, json_path: Path | None, config_name: str = "tiny",
        gltf: list[Path] | None = None, footage_size: int | None = None) -> dict:
    """World seeds, or (``gltf``) real animated assets in place of them; the job's footage at ``footage_size`` px
    (the models read SIZE whatever it is; the flow tracking, the footage fit and the texture take the footage)."""
    footage_size = footage_size or SIZE
    models = Models.load(checkpoints)
    settings = Settings(target_faces=4000, texture_size=256, gaussian_count=2000)
    started = time.perf_counter()
    cases = ((gltf_case(asset, footage_size) for asset in gltf) if gltf
             else (world_case(seed, footage_size) for seed in seeds))
    names, rows = [], []
    for case in cases:
        names.append(case.name)
        rows.append(evaluate_case(case, models, settings))
        print(f"{case.name}: " + ", ".join(f"{k} {v:.3f}" for k, v in rows[-1].items() if np.isscalar(v)), flush=True)
    figures = {key: np.round(np.mean([r[key] for r in rows], axis=0), 3).tolist() for key in rows[0]}
    figures["psnr_gap_db"] = round(figures["psnr_untracked"] - figures["psnr_tracked"], 3)
    figures["psnr_gap_full_db"] = round(figures["psnr_untracked_full"] - figures["psnr_tracked_full"], 3)
    figures.update({"config": config_name, "device": device_description(), "date": today(),
                    "seeds": [] if gltf else seeds, "assets": [p.name for p in gltf or []],
                    "frames": FRAMES, "footage_size": footage_size, "seconds": round(time.perf_counter() - started, 1),
                    # each case's own figures (the means above hide which motion fails)
                    "per_case": {name: {k: round(float(v), 3) for k, v in row.items() if np.isscalar(v)}
                                 for name, row in zip(names, rows, strict=True)}})
    print(json.dumps(figures, indent=1))
    if json_path:
        json_path.write_text(json.dumps(figures, indent=1))
    label = config_name + (f", footage {footage_size}²" if footage_size != SIZE else "")
    append_row(results, "Mesh tracking (`bench track`)",
               ["date", "device", "config", "seeds", "vertex error mean / p95 (% diag)", "flipped %", "Chamfer",
                "PSNR tracked / untracked (gap)", "static mesh error (% diag)",
                "s: marching cubes / decimation / UV / bake / tracking per frame"],
               [figures["date"], figures["device"], label, ", ".join(names) if gltf else f"{seeds[0]}–{seeds[-1]}",
                f"{figures['vertex_error_mean_pct']} / {figures['vertex_error_p95_pct']}", str(figures["flipped_pct"]),
                str(figures["chamfer"]), f"{figures['psnr_tracked']} / {figures['psnr_untracked']} ({figures['psnr_gap_db']}); "
                f"whole image {figures['psnr_tracked_full']} / {figures['psnr_untracked_full']} ({figures['psnr_gap_full_db']})",
                str(figures["vertex_error_static_pct"]),
                # the bake column: the first texture + its repaint from every tracked frame (since session 26)
                " / ".join([*(str(figures[f"seconds_{k}"]) for k in ("marching_cubes", "decimation", "uv")),
                            f"{figures['seconds_texture']} + {figures['seconds_repaint']}",
                            str(figures["seconds_tracking_per_frame"])])])
    return figures
