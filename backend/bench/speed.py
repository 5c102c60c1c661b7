"""`bench speed`: LRM per keyframe and LIM per interpolated frame (batched), frames/s, peak memory."""

from __future__ import annotations

import json
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from backend.bench.results import append_row, device_description, today
from backend.io.cameras import ring_cameras
from backend.models.config import preset
from backend.models.lim import LIM
from backend.models.lrm import LRM, camera_projections
from backend.models.view_flow import lifted_along_flow

VIEWS, LIM_BATCH = 4, 8
TARGETS = {"tiny": (0.5, 0.2)}  # seconds: LRM per keyframe, LIM per interpolated frame, on the 2-core CPU


def _time(fn, repeats: int, device: torch.device) -> float:
    fn()  # warm-up
    samples = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


@torch.no_grad()
def measure(config_name: str, device: torch.device, repeats: int = 10) -> dict:
    config = preset(config_name)
    lrm = LRM(config).to(device).eval()  # speed does not depend on the weights' values
    lim = LIM.from_lrm(lrm).to(device).eval()
    size = config.image_size
    views = torch.rand(1, VIEWS, config.input_channels, size, size, device=device)
    projections = camera_projections(ring_cameras(VIEWS, np.random.default_rng(0), size=size))[None].to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    with autocast:
        lrm_s = _time(lambda: lrm(views, projections), repeats, device)
        out = lrm(views, projections)
        tokens = out.tokens.expand(LIM_BATCH, -1, -1)
        features = [f.expand(LIM_BATCH, -1, -1) for f in out.features]
        batch_views = views.expand(LIM_BATCH, -1, -1, -1, -1)
        alphas = torch.linspace(0.1, 0.9, LIM_BATCH, device=device)
        # the in-betweens' lift reads the keyframes' views moved along optical flow, as the pipeline does
        lim_s = _time(lambda: lrm.tokens_to_planes(lim(tokens, features, batch_views, alphas, tokens).tokens,
                                                   lifted_along_flow(lrm, views[0], views[0].roll(2, dims=-1), projections[0], alphas)),
                      repeats, device) / LIM_BATCH
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {
        "config": config_name, "device": device_description(str(device)), "date": today(),
        "lrm_s_per_keyframe": round(lrm_s, 4), "lim_s_per_frame": round(lim_s, 4),
        "lim_frames_per_s": round(1 / lim_s, 1), "lim_batch": LIM_BATCH, "views": VIEWS, "image_size": size,
        "peak_memory_mib": round(peak, 1), "memory_kind": "GPU allocated" if device.type == "cuda" else "process RSS",
        "parameters_m": {"lrm": round(sum(p.numel() for p in lrm.parameters()) / 1e6, 2),
                         "lim": round(sum(p.numel() for p in lim.parameters()) / 1e6, 2)},
    }


def run(configs: list[str], device: str, results: Path, json_path: Path | None) -> list[dict]:
    figures = [measure(name, torch.device(device)) for name in configs]
    print(json.dumps(figures, indent=1))
    if json_path:
        json_path.write_text(json.dumps(figures, indent=1))
    for f in figures:
        target = TARGETS.get(f["config"]) if f["device"].count("cores") else None
        append_row(results, "Model speed (`bench speed`)",
                   ["date", "device", "config", "params (M) LRM / LIM", "LRM s / keyframe", "LIM s / frame (batch 8)",
                    "LIM frames/s", "peak memory MiB", "target (CPU)"],
                   [f["date"], f["device"], f["config"], f"{f['parameters_m']['lrm']} / {f['parameters_m']['lim']}",
                    str(f["lrm_s_per_keyframe"]), str(f["lim_s_per_frame"]), str(f["lim_frames_per_s"]),
                    f"{f['peak_memory_mib']} ({f['memory_kind']})", f"≤ {target[0]} / ≤ {target[1]}" if target else "–"])
    return figures
