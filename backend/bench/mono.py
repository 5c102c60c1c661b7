"""`bench mono`: monocular clips through generated views to a 4D result.

World seeds (evaluation only), each a 32-frame clip seen by one ring camera at the training distance:
- generated_view_psnr / _ssim: the diffusion model's views of every keyframe against the true views
  from the same cameras;
- novel_view_psnr_fg: the 4D result (a triplane per frame: LRM on input + generated views, LIM between
  keyframes) rendered from two cameras nobody saw, at 8 frames, PSNR over the true foreground;
  `..._true_views` is the same with the true views in place of the generated ones (the ceiling);
- input_view_psnr and mask_iou: the result rendered from the input camera against the input.
- tracked_*: the tracked textured mesh the job imports (``judge_tracked``), from the input camera and the
  unseen ones, and its vertex error against the true trajectories.
The world clip's camera is already the model's camera, so these figures leave framing out; the
clips in `../shared/data/videos` (the real DAVIS footage, the generated and the synthetic clips; their
first 32 frames) go through the whole path (matte, framing, virtual camera) for the input-view mask IoU
against the clip's matte and a contact sheet each: input | result from the input view | result from the
side. The CPU time of a whole 32-frame 256² monocular job is timed too.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage.metrics import structural_similarity

from backend.bench.interp import psnr
from backend.bench.results import append_row, device_description, today
from backend.bench.track import SUPERSAMPLE, TrackedJob, run_job, vertex_errors
from backend.input_fit import FitSettings, fit_to_footage
from backend.io.cameras import Camera, ring_cameras
from backend.io.matte import iou
from backend.models.checkpoints import load_checkpoint
from backend.models.mvdiffusion import elevation_of, generated_cameras
from backend.models.view_generators import TrainedViews
from backend.monocular import load_monocular, monocular_clip, virtual_camera
from backend.pipeline import reconstruct_frames
from backend.reconstruct import Models, Progress, Settings
from backend.render.textured import render_textured
from backend.render.volume import render_triplane
from backend.world import make_object
from backend.world.render import render_clip
from backend.world.seeds import EVALUATION_SEED_START, is_evaluation_seed

FRAMES, SIZE, STRIDE, SAMPLED = 32, 64, 4, 8
VIDEOS = Path(__file__).resolve().parents[3] / "shared" / "data" / "videos"
VIDEO_FOLDERS = ("davis", "generated", "synthetic")
VIDEO_SUFFIXES = {".gif", ".mp4", ".mov", ".webm"}


def render_result(lrm, planes: torch.Tensor, cameras: list[Camera]) -> tuple[np.ndarray, np.ndarray]:
    """RGB over white (V, H, W, 3) and alpha (V, H, W) of one frame's triplane."""
    out = render_triplane(lrm, planes, cameras)
    return out["rgb"].clamp(0, 1).numpy(), out["alpha"].numpy()


def judge_tracked(job: TrackedJob, truth, times: np.ndarray, cameras: list[Camera], views: np.ndarray, masks: np.ndarray,
                  sampled: np.ndarray) -> dict[str, float]:
    """The tracked textured mesh, what the user imports, against the truth: PSNR over the true foreground from the input
    camera (``cameras[0]``) and from the others (nobody saw them) at the ``sampled`` frames, anti-aliased as the truth is;
    vertex error (% of the diagonal) against the true trajectories over every frame. ``views`` (V, F, H, W, 3) uint8
    and ``masks`` (V, F, H, W) of the truth from ``cameras``."""
    seen, unseen = [], []
    for f in sampled:
        for v, camera in enumerate(cameras):
            image = render_textured(job.tracked[f], job.faces, job.uvs, job.texture, camera, SUPERSAMPLE)
            (unseen if v else seen).append(psnr(image, views[v, f].astype(np.float32) / 255, masks[v, f]))
    errors, _ = vertex_errors(truth, times, job.tracked)
    return {"tracked_input_view_psnr_fg": float(np.mean(seen)), "tracked_novel_view_psnr_fg": float(np.mean(unseen)),
            "tracked_vertex_error_pct": float(errors.mean())}


def world_case(seed: int, models: Models, diffusion, settings: Settings) -> dict[str, float]:
    """``models``: the monocular ones (``Models.monocular``)."""
    lrm, lim = models.lrm, models.lim
    fit = settings.fit_settings(monocular=True)
    if not is_evaluation_seed(seed):
        raise ValueError(f"seed {seed} is a training seed; benchmarks use evaluation seeds (>= {EVALUATION_SEED_START})")
    rng = np.random.default_rng([seed, 9])
    obj = make_object(seed)
    camera = ring_cameras(1, rng, size=SIZE)[0]
    generated = diffusion.cameras(camera)
    novel = [ring_cameras(1, rng, size=SIZE)[0] for _ in range(2)]
    times = np.linspace(0, 1, FRAMES)
    render = render_clip(obj, [camera, *generated, *novel], times, supersample=2)
    views = render.composite()  # (1 + G + 2, F, H, W, 3)
    mono = monocular_clip(views[0], diffusion, STRIDE, 24.0, float(np.degrees(elevation_of(camera))), seed=0, camera=camera)
    g = len(generated)
    made = mono.clip.frames[1:, mono.keys].astype(np.float32) / 255  # (G, K, H, W, 3)
    truth = views[1:1 + g, mono.keys].astype(np.float32) / 255
    generated_psnr = float(np.mean([psnr(a, b) for a, b in zip(made.reshape(-1, SIZE, SIZE, 3), truth.reshape(-1, SIZE, SIZE, 3),
                                                                  strict=True)]))
    generated_ssim = float(np.mean([structural_similarity(a, b, channel_axis=-1, data_range=1.0)
                                    for a, b in zip(made.reshape(-1, SIZE, SIZE, 3), truth.reshape(-1, SIZE, SIZE, 3),
                                                    strict=True)]))
    ours = reconstruct_frames(lrm, lim, mono.clip.frames, mono.clip.cameras, times, STRIDE)
    if fit.steps:  # the world clip's exact alpha stands in for the matte
        ours = fit_to_footage(lrm, ours, np.arange(FRAMES), [camera], views[:1], render.mask[:1].astype(np.float32), generated,
                              fit)
    ceiling = reconstruct_frames(lrm, lim, views[:1 + g], [camera, *generated], times, STRIDE)
    sampled = np.unique(np.linspace(0, FRAMES - 1, SAMPLED).round().astype(int))
    novel_fg, ceiling_fg, input_psnr, input_fg, mask_iou = [], [], [], [], []
    for f in sampled:
        rgb, _ = render_result(lrm, ours.planes[f], novel)
        best, _ = render_result(lrm, ceiling.planes[f], novel)
        for view in range(len(novel)):
            gt = views[1 + g + view, f].astype(np.float32) / 255
            mask = render.mask[1 + g + view, f]
            novel_fg.append(psnr(rgb[view], gt, mask))
            ceiling_fg.append(psnr(best[view], gt, mask))
        rgb, alpha = render_result(lrm, ours.planes[f], [camera])
        input_psnr.append(psnr(rgb[0], views[0, f].astype(np.float32) / 255))
        input_fg.append(psnr(rgb[0], views[0, f].astype(np.float32) / 255, render.mask[0, f]))
        mask_iou.append(iou(alpha[0] > 0.5, render.mask[0, f]))
    # the world clip's camera is the model's, so the tracked mesh lives in the world's frame, as the truth does
    job = run_job(mono.clip, models, replace(settings, gaussians=False), ours)
    tracked = judge_tracked(job, obj, times, [camera, *novel], views[[0, 1 + g, 2 + g]],
                            render.mask[[0, 1 + g, 2 + g]], sampled)
    return {"generated_view_psnr": generated_psnr, "generated_view_ssim": generated_ssim,
            "novel_view_psnr_fg": float(np.mean(novel_fg)), "novel_view_psnr_fg_true_views": float(np.mean(ceiling_fg)),
            "input_view_psnr": float(np.mean(input_psnr)), "input_view_psnr_fg": float(np.mean(input_fg)),
            "mask_iou": float(np.mean(mask_iou)), **tracked}


def video_clips(root: Path = VIDEOS) -> dict[str, list[Path]]:
    """The evaluation clips per folder of ``root`` (folders that are missing are left out)."""
    return {folder: sorted(p for p in (root / folder).iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
            for folder in VIDEO_FOLDERS if (root / folder).is_dir()}


def video_case(path: Path, lrm, lim, diffusion, fit: FitSettings, sheet: Path) -> dict[str, float]:
    """The whole monocular path on a clip's first ``FRAMES`` frames: input-view mask IoU and a contact sheet."""
    footage = load_monocular(path, SIZE, frame_end=FRAMES)
    mono = monocular_clip(footage.frames, diffusion, STRIDE, footage.fps)
    result = reconstruct_frames(lrm, lim, mono.clip.frames, mono.clip.cameras, mono.clip.times, STRIDE)
    camera = mono.clip.cameras[0]
    result = fit_to_footage(lrm, result, np.arange(len(footage.frames)), [camera], footage.frames[None], footage.masks[None],
                            mono.clip.cameras[1:], fit)
    side = virtual_camera(SIZE)
    side = generated_cameras(side, (90.0,))[0]
    columns = np.unique(np.linspace(0, len(footage.frames) - 1, 6).round().astype(int))
    scores, rows = [], {"input": [], "result": [], "side": []}
    for f in range(len(footage.frames)):
        rgb, alpha = render_result(lrm, result.planes[f], [camera, side])
        scores.append(iou(alpha[0] > 0.5, footage.masks[f] > 0.5))
        if f in columns:
            rows["input"].append(footage.frames[f])
            rows["result"].append((rgb[0] * 255).round().astype(np.uint8))
            rows["side"].append((rgb[1] * 255).round().astype(np.uint8))
    image = np.concatenate([np.concatenate(rows[k], axis=1) for k in ("input", "result", "side")], axis=0)
    Image.fromarray(image).resize((image.shape[1] * 2, image.shape[0] * 2), Image.Resampling.NEAREST).save(sheet)
    return {"mask_iou": float(np.mean(scores)), "matte": footage.matte_method}


def time_end_to_end(seed: int, checkpoints: Path, settings: Settings) -> float:
    """Seconds for a whole monocular job (final quality) on a 32-frame 256² MP4 of a world seed."""
    from backend.io.video import write_mp4
    from backend.monocular import reconstruct_monocular

    obj = make_object(seed)
    camera = ring_cameras(1, np.random.default_rng([seed, 9]), size=256)[0]
    frames = render_clip(obj, [camera], np.linspace(0, 1, FRAMES), supersample=2).composite()[0]
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        write_mp4(clip, frames, 24.0)
        started = time.perf_counter()
        reconstruct_monocular(clip, Models.load(checkpoints), Path(tmp) / "job", settings, Progress())
        return time.perf_counter() - started


def run(seeds: list[int], checkpoints: Path, results: Path, json_path: Path | None, config_name: str = "tiny",
        fit_steps: int | None = None) -> dict:
    settings = Settings.for_quality("final", fit_steps=fit_steps)
    fit = settings.fit_settings(monocular=True)
    models = Models.load(checkpoints).monocular()  # the LRM and LIM a monocular job uses
    lrm, lim = models.lrm, models.lim
    diffusion = TrainedViews(load_checkpoint(checkpoints / "mvdiff", "mvdiff"))
    per_seed = [world_case(seed, models, diffusion, settings) for seed in seeds]
    for seed, row in zip(seeds, per_seed, strict=True):
        print(f"seed {seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()))
    summary = {k: round(float(np.mean([r[k] for r in per_seed])), 3) for k in per_seed[0]}
    videos: dict[str, dict[str, dict]] = {}
    for folder, clips in video_clips().items():
        videos[folder] = {}
        for clip in clips:
            row = video_case(clip, lrm, lim, diffusion, fit, results.parent / f"mono_{clip.stem}.png")
            videos[folder][clip.stem] = row
            print(f"{folder} {clip.stem}: mask IoU {row['mask_iou']:.3f} ({row['matte']} matte)")
    davis = videos.get("davis", {})
    end_to_end = round(time_end_to_end(seeds[0], checkpoints, settings), 1)
    print(f"end to end, 32 frames at 256², final quality: {end_to_end} s")
    report = {"config": config_name, "device": device_description(), "seeds": seeds, "fit_steps": fit.steps, **summary,
              "davis_mask_iou": {k: round(v["mask_iou"], 3) for k, v in davis.items()},
              "davis_mask_iou_mean": round(float(np.mean([v["mask_iou"] for v in davis.values()])), 3) if davis else None,
              "video_mask_iou": {f"{folder}/{k}": round(v["mask_iou"], 3) for folder, rows in videos.items()
                                 for k, v in rows.items()},
              "video_mask_iou_mean": {folder: round(float(np.mean([v["mask_iou"] for v in rows.values()])), 3)
                                      for folder, rows in videos.items() if rows},
              "end_to_end_s_32_frames_256": end_to_end}
    if json_path:
        json_path.write_text(json.dumps(report, indent=1))
    append_row(results, "Monocular clips (`bench mono`)",
               ["date", "device", "config", "seeds", "generated views PSNR / SSIM", "novel-view PSNR_FG (true views)",
                "input-view PSNR / mask IoU", "DAVIS mask IoU (mean of 6)", "other clips' mask IoU (means)", "32 × 256² job, s"],
               [today(), report["device"], f"{config_name}, fit {fit.steps}", f"{seeds[0]}–{seeds[-1]}",
                f"{summary['generated_view_psnr']} / {summary['generated_view_ssim']}",
                f"{summary['novel_view_psnr_fg']} ({summary['novel_view_psnr_fg_true_views']})",
                f"{summary['input_view_psnr']} / {summary['mask_iou']}",
                str(report["davis_mask_iou_mean"]),
                ", ".join(f"{k} {v}" for k, v in report["video_mask_iou_mean"].items() if k != "davis") or "–",
                str(end_to_end)])
    append_row(results, "Monocular tracked meshes (`bench mono`)",
               ["date", "device", "config", "seeds", "tracked mesh PSNR_FG: input camera (triplane) / unseen cameras",
                "vertex error (% diag)", "monocular stiffness"],
               [today(), report["device"], f"{config_name}, fit {fit.steps}", f"{seeds[0]}–{seeds[-1]}",
                f"{summary['tracked_input_view_psnr_fg']} ({summary['input_view_psnr_fg']}) / "
                f"{summary['tracked_novel_view_psnr_fg']}", str(summary["tracked_vertex_error_pct"]),
                str(settings.monocular_stiffness)])
    return report
