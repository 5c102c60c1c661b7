"""`bench interp`: novel-view quality at held-out intermediate times, per interpolation method.

Per evaluation seed: keyframes k and k+1 four frames apart (of a 32-frame clip), 4 ring input
cameras, 2 novel cameras that the models never see; at α in {0.25, 0.5, 0.75}:
  lim / lim_no_causal  T̂(k+α) = LIM(F_k, I_{k+1}, α), its plane lift read from the keyframes'
                       views moved to k+α along optical flow (models/view_flow.py)
  lim_blended_lift     the same LIM tokens with the keyframes' plane lifts blended (the lift before session 13)
  linear               (1−α)·LRM(I_k) + α·LRM(I_{k+1})
  image_flow           LRM on input views interpolated in image space with optical flow
  oracle               LRM on the true input views at k+α
rendered from the novel cameras and compared with the ground truth there.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from skimage.metrics import structural_similarity

from backend.bench.results import append_row, device_description, today
from backend.io.cameras import Camera
from backend.models.checkpoints import load_checkpoint
from backend.models.lrm import camera_projections
from backend.models.view_flow import lifted_along_flow, views_between
from backend.render.volume import render_triplane
from backend.train.data import random_cameras, render_views
from backend.world import make_object
from backend.world.seeds import EVALUATION_SEED_START, is_evaluation_seed

GAP_FRAMES, FRAME = 4, 1.0 / 31
ALPHAS = (0.25, 0.5, 0.75)


def psnr(prediction: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> float:
    error = (prediction - truth) ** 2
    mse = error[mask].mean() if mask is not None else error.mean()
    return float(10 * np.log10(1.0 / max(mse, 1e-10)))


@dataclass
class Keyframe:
    model_input: torch.Tensor  # (V, 9, H, W) RGB over white + Plücker
    rgb: torch.Tensor  # (V, H, W, 3)
    projections: torch.Tensor  # (V, 3, 4)


@dataclass
class Target:
    alpha: float  # where between the keyframes
    inputs: Keyframe  # the true input views at that time (for the oracle)
    cameras: list[Camera]  # novel cameras
    rgb: np.ndarray  # (Vn, H, W, 3) ground truth over white
    mask: np.ndarray  # (Vn, H, W) ground-truth foreground


@dataclass
class Case:
    first: Keyframe
    second: Keyframe
    targets: list[Target]


def _flow_views(first: Keyframe, second: Keyframe, alpha: float) -> torch.Tensor:
    rgb = views_between(first.model_input[:, :3], second.model_input[:, :3], torch.tensor([alpha]))[0]
    return torch.cat([rgb, first.model_input[:, 3:]], dim=1)


def procedural_case(seed: int, size: int) -> Case:
    if not is_evaluation_seed(seed):
        raise ValueError(f"seed {seed} is a training seed; benchmarks use evaluation seeds (>= {EVALUATION_SEED_START})")
    rng = np.random.default_rng([seed, 5])
    obj = make_object(seed)
    gap = GAP_FRAMES * FRAME
    t_k = float(rng.uniform(0, 1 - gap))
    ring, novel = random_cameras(rng, 4, 2, size)

    def keyframe(t: float) -> Keyframe:
        views = render_views(obj, ring, t)
        return Keyframe(views.model_input, views.rgb, views.projections)

    targets = []
    for alpha in ALPHAS:
        truth = render_views(obj, novel, t_k + alpha * gap)
        targets.append(Target(alpha, keyframe(t_k + alpha * gap), novel, truth.rgb.numpy(), truth.alpha.numpy() > 0.5))
    return Case(keyframe(t_k), keyframe(t_k + gap), targets)


def gltf_cases(asset: Path, size: int, inputs: int = 4, novel: int = 2, frames: int = 32) -> list[Case]:
    """Cases from a real asset rendered by Blender: views 0..inputs-1 read, the rest judge."""
    from backend.io.clip_folder import read_clip_folder
    from backend.world.gltf_clip import write_gltf_clip

    with tempfile.TemporaryDirectory(prefix="lim4d-interp-") as tmp:
        write_gltf_clip(Path(tmp), asset, None, inputs + novel, frames, size)
        clip = read_clip_folder(tmp)
        masks = [np.load(Path(tmp) / "gt" / f"view_{v:02d}.npz")["alpha"] > 0.5 for v in range(inputs + novel)]
    rgb = torch.as_tensor(clip.frames).float() / 255  # (V, F, H, W, 3)
    plucker = torch.as_tensor(np.stack([c.plucker() for c in clip.cameras[:inputs]]))
    projections = camera_projections(clip.cameras[:inputs])

    def keyframe(f: int) -> Keyframe:
        return Keyframe(torch.cat([rgb[:inputs, f].permute(0, 3, 1, 2), plucker], dim=1), rgb[:inputs, f], projections)

    cases = []
    for k in range(0, frames - GAP_FRAMES, 2 * GAP_FRAMES + 1):
        targets = [Target(a, keyframe(k + round(a * GAP_FRAMES)), clip.cameras[inputs:],
                          rgb[inputs:, k + round(a * GAP_FRAMES)].numpy(),
                          np.stack([m[k + round(a * GAP_FRAMES)] for m in masks[inputs:]]))
                   for a in ALPHAS]
        cases.append(Case(keyframe(k), keyframe(k + GAP_FRAMES), targets))
    return cases


@torch.no_grad()
def evaluate_case(case: Case, lrm, lims: dict[str, torch.nn.Module]) -> dict[str, list[dict[str, float]]]:
    projections = case.first.projections[None]
    out_k, out_1 = lrm(case.first.model_input[None], projections), lrm(case.second.model_input[None], projections)
    scores: dict[str, list[dict[str, float]]] = {}
    for target in case.targets:
        alpha = target.alpha
        planes = {
            "oracle": lrm(target.inputs.model_input[None], projections).planes,
            "linear": (1 - alpha) * out_k.planes + alpha * out_1.planes,
            "image_flow": lrm(_flow_views(case.first, case.second, alpha)[None], projections).planes,
        }
        lifted = lifted_along_flow(lrm, case.first.model_input, case.second.model_input, case.first.projections,
                                   torch.tensor([alpha]))
        for name, lim in lims.items():
            hop = lim(out_k.tokens, out_k.features, case.second.model_input[None], torch.tensor([alpha]), out_1.tokens)
            planes[name] = lrm.tokens_to_planes(hop.tokens, lifted)
            if name == "lim":
                blended = lrm.lifted_between(out_k, out_1, torch.tensor([alpha]))
                planes["lim_blended_lift"] = lrm.tokens_to_planes(hop.tokens, blended)
        for name, p in planes.items():
            image = render_triplane(lrm, p, target.cameras)["rgb"].clamp(0, 1).numpy()
            for view, (gt, mask) in enumerate(zip(target.rgb, target.mask, strict=True)):
                scores.setdefault(name, []).append({
                    "psnr": psnr(image[view], gt),
                    "psnr_fg": psnr(image[view], gt, mask),
                    "ssim": float(structural_similarity(image[view], gt, channel_axis=-1, data_range=1.0)),
                })
    return scores


def run(seeds: list[int], checkpoints: Path, results: Path, json_path: Path | None, config_name: str = "tiny",
        gltf: list[Path] | None = None) -> dict:
    lrm = load_checkpoint(checkpoints / "lrm", "lrm")
    lims = {}
    for name, folder in (("lim", "lim"), ("lim_no_causal", "lim_no_causal")):
        if (checkpoints / folder).is_dir():
            lims[name] = load_checkpoint(checkpoints / folder, "lim")
    started = time.perf_counter()
    cases = [c for asset in gltf for c in gltf_cases(asset, lrm.config.image_size)] if gltf else [
        procedural_case(seed, lrm.config.image_size) for seed in seeds]
    collected: dict[str, list[dict[str, float]]] = {}
    for case in cases:
        for name, rows in evaluate_case(case, lrm, lims).items():
            collected.setdefault(name, []).extend(rows)
    methods = {name: {k: round(float(np.mean([r[k] for r in rows])), 3) for k in ("psnr", "psnr_fg", "ssim")}
               for name, rows in collected.items()}
    figures = {"config": config_name, "device": device_description(), "date": today(),
               "seeds": [] if gltf else seeds, "assets": [p.name for p in gltf or []],
               "alphas": list(ALPHAS), "gap_frames": GAP_FRAMES, "methods": methods,
               "seconds": round(time.perf_counter() - started, 1)}
    if "lim" in methods:
        lin, ora, lim = methods["linear"]["psnr_fg"], methods["oracle"]["psnr_fg"], methods["lim"]["psnr_fg"]
        figures["lim_gap_closed"] = round((lim - lin) / (ora - lin), 3) if ora != lin else None
    print(json.dumps(figures, indent=1))
    if json_path:
        json_path.write_text(json.dumps(figures, indent=1))
    cells = [f"{name}: {m['psnr_fg']:.2f} / {m['psnr']:.2f} / {m['ssim']:.3f}" for name, m in methods.items()]
    append_row(results, "Interpolation at held-out times, novel views (`bench interp`)",
               ["date", "device", "config", "data", "PSNR_FG / PSNR / SSIM per method", "LIM closes of linear→oracle gap"],
               [figures["date"], figures["device"], config_name,
                ", ".join(figures["assets"]) if gltf else f"seeds {seeds[0]}–{seeds[-1]} ({len(seeds)})", "<br>".join(cells),
                str(figures.get("lim_gap_closed"))])
    return figures
