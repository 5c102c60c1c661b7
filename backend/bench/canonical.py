"""`bench canonical`: drift of the propagated canonical field over a 32-frame clip.

Per evaluation seed: the chain (identity at frame 0, LRM‾ + LIM‾ segment by segment, keyframes
every 4 frames) runs along a 4-view clip; at every frame the canonical maps rendered from the
input cameras are compared with the world's exact canonical maps on pixels both call surface.
Error is in % of the object's bounding-box diagonal, per frame, so drift along the chain shows.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import torch

from backend.bench.results import append_row, device_description, today
from backend.models.canonical import CanonicalChain, canonical_maps
from backend.models.checkpoints import load_checkpoint
from backend.pipeline import keyframe_indices
from backend.train.data import random_cameras, render_views
from backend.world import make_object
from backend.world.seeds import EVALUATION_SEED_START, is_evaluation_seed

FRAMES, STRIDE = 32, 4


@torch.no_grad()
def drift(seed: int, chain: CanonicalChain, checked: set[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Canonical error (% of diagonal) at every frame of one clip (NaN at frames not in ``checked``, when
    given: the chain still runs through every keyframe), and the static baseline's: taking each surface
    point's current position as its canonical one (what a method that tracks nothing would say)."""
    if not is_evaluation_seed(seed):
        raise ValueError(f"seed {seed} is a training seed; benchmarks use evaluation seeds (>= {EVALUATION_SEED_START})")
    size = chain.lrm.config.image_size
    obj = make_object(seed)
    ring, _ = random_cameras(np.random.default_rng([seed, 9]), 4, 0, size)
    times = np.linspace(0, 1, FRAMES)
    views = [render_views(obj, ring, t) for t in times]
    diagonal = np.linalg.norm(np.ptp(obj.canonical_vertices, axis=0))
    errors = np.full(FRAMES, np.nan)
    static = np.array([_static_error(v, diagonal) for v in views])
    maps = chain.start(views[0].model_input, ring)
    errors[0] = _error(maps, views[0], diagonal)
    for k, nxt in itertools.pairwise(keyframe_indices(FRAMES, STRIDE)):
        between = [f for f in range(k + 1, nxt) if checked is None or f in checked]
        segment = chain.segment(maps, views[k].model_input, views[nxt].model_input, [(f - k) / (nxt - k) for f in between],
                                ring)
        for f, planes in zip(between, segment.planes, strict=True):
            errors[f] = _error(canonical_maps(chain.lrm_c, planes, ring), views[f], diagonal)
        maps = segment.next_maps  # the keyframe's own maps: rendered once, for the chain and for its error
        if checked is None or nxt in checked:
            errors[nxt] = _error(maps, views[nxt], diagonal)
    return errors, static


def _static_error(truth, diagonal: float) -> float:
    covered = truth.alpha.numpy() > 0.99
    if not covered.any():
        return float("nan")
    errors = []
    for view, camera in enumerate(truth.cameras):
        v, u = np.nonzero(covered[view])
        z = truth.depth.numpy()[view][v, u]
        pixels = np.stack([u + 0.5, v + 0.5, np.ones_like(z)], -1) * z[:, None]
        in_camera = pixels @ np.linalg.inv(camera.K).T
        rotation, translation = camera.world_to_camera[:3, :3], camera.world_to_camera[:3, 3]
        world = (in_camera - translation) @ rotation
        errors.append(np.linalg.norm(world - truth.canonical.numpy()[view][v, u], axis=-1))
    return float(np.concatenate(errors).mean() / diagonal * 100)


def _error(maps: torch.Tensor, truth, diagonal: float) -> float:
    predicted = maps.permute(0, 2, 3, 1).numpy()
    covered = (np.abs(predicted).sum(-1) > 0) & truth.alpha.numpy().astype(bool)
    if not covered.any():
        return float("nan")
    return float(np.linalg.norm(predicted[covered] - truth.canonical.numpy()[covered], axis=-1).mean() / diagonal * 100)


def run(seeds: list[int], checkpoints: Path, results: Path, json_path: Path | None, config_name: str = "tiny") -> dict:
    chain = CanonicalChain(load_checkpoint(checkpoints / "lrm", "lrm"), load_checkpoint(checkpoints / "lrm_canonical", "lrm"),
                           load_checkpoint(checkpoints / "lim_canonical", "lim"))
    runs = [drift(seed, chain) for seed in seeds]
    per_frame = np.nanmean(np.stack([r[0] for r in runs]), axis=0)
    static = np.nanmean(np.stack([r[1] for r in runs]), axis=0)
    figures = {"config": config_name, "device": device_description(), "date": today(), "seeds": seeds,
               "canonical_error_pct_mean": round(float(np.nanmean(per_frame)), 3),
               "canonical_error_pct_last_frame": round(float(per_frame[-1]), 3),
               "canonical_error_pct_per_frame": [round(float(e), 3) for e in per_frame],
               "static_baseline_pct_mean": round(float(np.nanmean(static)), 3),
               "static_baseline_pct_last_frame": round(float(static[-1]), 3)}
    print(json.dumps(figures, indent=1))
    if json_path:
        json_path.write_text(json.dumps(figures, indent=1))
    append_row(results, "Canonical-field drift (`bench canonical`)",
               ["date", "device", "config", "seeds", "error mean (% diag)", "error at frame 31 (% diag)",
                "static baseline mean / frame 31 (% diag)"],
               [figures["date"], figures["device"], config_name, f"{seeds[0]}–{seeds[-1]}",
                str(figures["canonical_error_pct_mean"]), str(figures["canonical_error_pct_last_frame"]),
                f"{figures['static_baseline_pct_mean']} / {figures['static_baseline_pct_last_frame']}"])
    return figures
