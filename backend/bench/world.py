"""`bench world`: time to render 4 views x 16 frames x 128² with every ground-truth channel."""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from backend.bench.results import append_row, device_description, today
from backend.world.clip import render_world_clip, write_world_clip
from backend.world.seeds import EVALUATION_SEED_START

VIEWS, FRAMES, SIZE = 4, 16, 128
TARGET_S = 10.0


def run(results: Path, json_path: Path | None = None, seeds: int = 6) -> dict:
    """Median render and render+write times over several families' seeds; appends a row to RESULTS.md."""
    render_times, total_times, families = [], [], []
    for seed in range(EVALUATION_SEED_START, EVALUATION_SEED_START + seeds):
        started = time.perf_counter()
        obj, *_ = render_world_clip(seed, VIEWS, FRAMES, SIZE)
        render_times.append(time.perf_counter() - started)
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            write_world_clip(Path(tmp), seed, VIEWS, FRAMES, SIZE)
            total_times.append(time.perf_counter() - started)
        families.append(f"{obj.family}/{obj.motion}")
    figures = {
        "views": VIEWS, "frames": FRAMES, "size": SIZE, "supersample": 2,
        "render_s_median": round(statistics.median(render_times), 3),
        "render_s_max": round(max(render_times), 3),
        "render_and_write_s_median": round(statistics.median(total_times), 3),
        "target_s": TARGET_S,
        "device": device_description(),
        "date": today(),
        "objects": families,
    }
    print(json.dumps(figures, indent=1))
    if json_path:
        json_path.write_text(json.dumps(figures, indent=1))
    append_row(
        results, "World rendering (`bench world`)",
        ["date", "device", "clip", "render s (median / max)", "render + MP4/GT write s (median)", "target"],
        [figures["date"], figures["device"], f"{VIEWS} views x {FRAMES} frames x {SIZE}², all GT channels, 2x SSAA RGB",
         f"{figures['render_s_median']} / {figures['render_s_max']}", str(figures["render_and_write_s_median"]),
         f"< {TARGET_S} s"],
    )
    return figures
