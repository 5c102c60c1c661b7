"""`bench interp`: novel-view quality at held-out intermediate times, per interpolation method.

Per evaluation seed: keyframes k and k+1 four frames apart (of a 32-frame clip), 4 ring input
cameras, 2 novel cameras that the models never see; at α in {0.25, 0.5, 0.75}:
  lim / lim_no_causal  T̂(k+α) = LIM(F_k, I_{k+1}, α)
  linear               (1−α)·LRM(I_k) + α·LRM(I_{k+1})
  image_flow           LRM on input views interpolated in image space with optical flow
  oracle               LRM on the true input views at k+α
rendered from the novel cameras and compared with the ground truth there.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from skimage.metrics import structural_similarity

from backend.bench.flow import interpolate_frame
from backend.bench.results import append_row, device_description, today
from backend.models.checkpoints import load_checkpoint
from backend.render.volume import render_views as render_field
from backend.train.data import Views, random_cameras, render_views
from backend.world import make_object

GAP_FRAMES, FRAME = 4, 1.0 / 31
ALPHAS = (0.25, 0.5, 0.75)


def psnr(prediction: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> float:
    error = (prediction - truth) ** 2
    mse = error[mask].mean() if mask is not None else error.mean()
    return float(10 * np.log10(1.0 / max(mse, 1e-10)))


def _flow_views(first: Views, second: Views, alpha: float) -> torch.Tensor:
    frames = [interpolate_frame((a.numpy() * 255).astype(np.uint8), (b.numpy() * 255).astype(np.uint8), alpha)
              for a, b in zip(first.rgb, second.rgb, strict=True)]
    rgb = torch.as_tensor(np.stack(frames)).float().permute(0, 3, 1, 2) / 255
    return torch.cat([rgb, first.model_input[:, 3:]], dim=1)


@torch.no_grad()
def evaluate_seed(seed: int, lrm, lims: dict[str, torch.nn.Module]) -> dict[str, list[dict[str, float]]]:
    config = lrm.config
    rng = np.random.default_rng([seed, 5])
    obj = make_object(seed)
    gap = GAP_FRAMES * FRAME
    t_k = float(rng.uniform(0, 1 - gap))
    ring, novel = random_cameras(rng, 4, 2, config.image_size)
    first, second = render_views(obj, ring, t_k), render_views(obj, ring, t_k + gap)
    out_k, out_1 = lrm(first.model_input[None]), lrm(second.model_input[None])
    scores: dict[str, list[dict[str, float]]] = {}
    for alpha in ALPHAS:
        t = t_k + alpha * gap
        truth = render_views(obj, novel, t)
        a = torch.tensor([alpha])
        planes = {
            "oracle": lrm(render_views(obj, ring, t).model_input[None]).planes,
            "linear": (1 - alpha) * out_k.planes + alpha * out_1.planes,
            "image_flow": lrm(_flow_views(first, second, alpha)[None]).planes,
        }
        for name, lim in lims.items():
            planes[name] = lrm.tokens_to_planes(lim(out_k.tokens, out_k.features, second.model_input[None], a).tokens)
        for name, p in planes.items():
            image = render_field(lambda pts, p=p: lrm.decoder(p, pts), novel, config.bound, config.coarse_samples,
                                 config.fine_samples)["rgb"].clamp(0, 1).numpy()
            for view in range(len(novel)):
                gt = truth.rgb[view].numpy()
                mask = truth.alpha[view].numpy() > 0.5
                scores.setdefault(name, []).append({
                    "psnr": psnr(image[view], gt),
                    "psnr_fg": psnr(image[view], gt, mask),
                    "ssim": float(structural_similarity(image[view], gt, channel_axis=-1, data_range=1.0)),
                })
    return scores


def run(seeds: list[int], checkpoints: Path, results: Path, json_path: Path | None, config_name: str = "tiny") -> dict:
    lrm = load_checkpoint(checkpoints / "lrm", "lrm")
    lims = {}
    for name, folder in (("lim", "lim"), ("lim_no_causal", "lim_no_causal")):
        if (checkpoints / folder).is_dir():
            lims[name] = load_checkpoint(checkpoints / folder, "lim")
    started = time.perf_counter()
    collected: dict[str, list[dict[str, float]]] = {}
    for seed in seeds:
        for name, rows in evaluate_seed(seed, lrm, lims).items():
            collected.setdefault(name, []).extend(rows)
    methods = {name: {k: round(float(np.mean([r[k] for r in rows])), 3) for k in ("psnr", "psnr_fg", "ssim")}
               for name, rows in collected.items()}
    figures = {"config": config_name, "device": device_description(), "date": today(), "seeds": seeds,
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
               ["date", "device", "config", "seeds", "PSNR_FG / PSNR / SSIM per method", "LIM closes of linear→oracle gap"],
               [figures["date"], figures["device"], config_name, f"{seeds[0]}–{seeds[-1]} ({len(seeds)})", "<br>".join(cells),
                str(figures.get("lim_gap_closed"))])
    return figures
