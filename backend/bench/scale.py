"""`bench scale`: cost per pipeline stage as the clip grows (16, 64, 256 frames), and the plots of RESULTS.md.

Each size is a world clip of an evaluation seed (4 views at 64², keyframes every 4 frames) through the
whole `reconstruct` (final quality, without the Gaussian preview). `plots` redraws the figures from
the benchmarks' JSON files: interpolation quality per method, vertex error over time, and time per
frame as the clip grows.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from backend.bench.results import append_row, device_description, today

STAGES = ("lrm_lim", "fit", "marching_cubes", "decimation", "uv", "texture", "tracking", "repaint", "outputs")
TABLE_STAGES = ("lrm_lim", "fit", "marching_cubes", "decimation", "uv", "texture", "tracking", "outputs")  # the columns


def stage_cell(row: dict, stage: str) -> str:
    """A table cell; the texture's holds its repaint too ("first + repaint", since session 26: older rows lack it)."""
    if stage == "texture":
        return f"{row['texture_s']} + {row.get('repaint_s', 0.0)}"
    return str(row[f"{stage}_s"])


def run(frame_counts: list[int], seed: int, checkpoints: Path, results: Path, json_path: Path | None) -> dict:
    from backend.io.clip_folder import read_clip_folder
    from backend.reconstruct import Models, Progress, Settings, reconstruct
    from backend.world.clip import write_world_clip

    models = Models.load(checkpoints)
    rows = []
    for count in frame_counts:
        with tempfile.TemporaryDirectory() as tmp:
            write_world_clip(Path(tmp) / "clip", seed, 4, count, 64)
            clip = read_clip_folder(Path(tmp) / "clip")
            progress = Progress()
            started = time.perf_counter()
            reconstruct(clip, models, Path(tmp) / "job", Settings.for_quality("final", gaussians=False), progress)
            total = time.perf_counter() - started
        row = {"frames": count, "total_s": round(total, 2), "per_frame_s": round(total / count, 3),
               **{f"{stage}_s": progress.timings.get(stage, 0.0) for stage in STAGES}}
        rows.append(row)
        print(json.dumps(row))
        append_row(results, "Cost per stage as the clip grows (`bench scale`)",
                   ["date", "device", "frames", *[f"{s} s" for s in TABLE_STAGES], "total s", "s / frame"],
                   [today(), device_description(), str(count), *[stage_cell(row, s) for s in TABLE_STAGES],
                    str(row["total_s"]), str(row["per_frame_s"])])
    report = {"device": device_description(), "date": today(), "seed": seed, "views": 4, "size": 64, "rows": rows}
    if json_path:
        json_path.write_text(json.dumps(report, indent=1))
    plots(results.parent)
    return report


def plots(folder: Path) -> list[Path]:
    """Redraw the figures RESULTS.md shows from the JSON files in ``folder``; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    sources = [(name, folder / file) for name, file in (("procedural seeds", "interp.json"), ("glTF assets", "interp_gltf.json"))
               if (folder / file).is_file()]
    if sources:
        fig, axes = plt.subplots(1, len(sources), figsize=(6 * len(sources), 3.6), squeeze=False)
        for ax, (name, path) in zip(axes[0], sources, strict=True):
            methods = json.loads(path.read_text())["methods"]
            order = [m for m in ("linear", "lim_blended_lift", "lim_no_causal", "lim", "image_flow", "oracle") if m in methods]
            ax.bar(order, [methods[m]["psnr_fg"] for m in order], color="#4a7dbd")
            low = min(methods[m]["psnr_fg"] for m in order)
            ax.set_ylim(low - 1.0, max(methods[m]["psnr_fg"] for m in order) + 0.5)
            ax.set_title(f"novel-view PSNR_FG at held-out times ({name})", fontsize=9)
            ax.tick_params(axis="x", labelsize=8, labelrotation=20)
            ax.set_ylabel("dB")
        fig.tight_layout()
        fig.savefig(folder / "interp_methods.png", dpi=110)
        plt.close(fig)
        written.append(folder / "interp_methods.png")
    track = folder / "track.json"
    if track.is_file() and "vertex_error_per_frame_pct" in json.loads(track.read_text()):
        data = json.loads(track.read_text())
        fig, ax = plt.subplots(figsize=(6, 3.6))
        ax.plot(data["vertex_error_per_frame_pct"], label="tracked mesh")
        ax.plot(data["static_error_per_frame_pct"], "--", label="frame-0 mesh left still")
        ax.axhline(2.0, color="grey", lw=0.8, label="target (2 %)")
        ax.set_xlabel("frame")
        ax.set_ylabel("vertex error, % of the diagonal")
        ax.set_title(f"vertex error over time (mean over seeds {data['seeds'][0]}–{data['seeds'][-1]})", fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(folder / "track_over_time.png", dpi=110)
        plt.close(fig)
        written.append(folder / "track_over_time.png")
    scale = folder / "scale.json"
    if scale.is_file():
        rows = json.loads(scale.read_text())["rows"]
        fig, ax = plt.subplots(figsize=(6, 3.6))
        frames = [r["frames"] for r in rows]
        bottom = [0.0] * len(rows)
        for stage in STAGES:
            values = [r.get(f"{stage}_s", 0.0) / r["frames"] for r in rows]  # rows from before a stage existed lack it
            ax.bar([str(f) for f in frames], values, bottom=bottom, label=stage)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.set_xlabel("frames in the clip")
        ax.set_ylabel("seconds per frame")
        ax.set_title("time per frame as the clip grows, by stage", fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(folder / "scale.png", dpi=110)
        plt.close(fig)
        written.append(folder / "scale.png")
    return written
