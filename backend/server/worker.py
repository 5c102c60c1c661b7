"""One job in its own process (`python -m backend.server.worker JOB_FOLDER`), started by the server's queue.

Reads the job's request, runs the pipeline into JOB/result, and appends stage, mesh and frame events
(with the fraction done and an ETA) to the job's event log as work finishes. On a clear error it
leaves the reason in result/error.txt and exits 1. It dies with the server that started it.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from backend.protocol import STAGES, Event

# share of the whole job each stage takes, roughly, on the tiny models (tracking is spread over frames)
STAGE_WEIGHTS = {"decode": 0.04, "views": 0.1, "lrm_lim": 0.08, "fit": 0.2, "marching_cubes": 0.04, "decimation": 0.02,
                 "uv": 0.06, "texture": 0.04, "tracking": 0.6, "repaint": 0.04, "gaussians": 0.08, "outputs": 0.04}


class Estimate:
    """Fraction done and time left from the stages passed and the frames tracked."""

    def __init__(self, frames: int, gaussians: bool, monocular: bool = False, repaint: bool = True) -> None:
        self.frames = max(frames, 1)
        self.weights = dict(STAGE_WEIGHTS)
        if not gaussians:
            self.weights.pop("gaussians")
        if not repaint or frames < 2:  # nothing to repaint from
            self.weights.pop("repaint")
        if not monocular:
            self.weights.pop("views")
        total = sum(self.weights.values())
        self.weights = {k: v / total for k, v in self.weights.items()}
        self.started = time.monotonic()
        self.done_before = 0.0  # weight of the stages finished
        self.stage: str | None = None
        self.frames_done = 0

    def enter(self, stage: str) -> None:
        if self.stage is not None:
            self.done_before += self.weights.get(self.stage, 0.0)
        self.stage = stage

    def fraction(self) -> float:
        inside = self.weights["tracking"] * self.frames_done / self.frames if self.stage == "tracking" else 0.0
        return min(self.done_before + inside, 1.0)

    def report(self) -> dict[str, Any]:
        fraction = self.fraction()
        elapsed = time.monotonic() - self.started
        eta = elapsed * (1 - fraction) / fraction if fraction > 0.02 else None
        return {"fraction": round(fraction, 4), "eta_s": None if eta is None else round(eta, 1)}


def die_with_parent(parent: int) -> None:
    """Exit when the server is gone, however it went (kill -9 included)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(3)
            time.sleep(0.25)

    if os.getppid() != parent:
        os._exit(3)
    threading.Thread(target=watch, daemon=True).start()


def run_job(folder: Path, checkpoints: Path, device: str = "cpu") -> int:
    from backend.io.cameras import Camera
    from backend.io.clip_source import camera_from_json, load_clip, sequence_gaps, view_side
    from backend.io.footage import probe_footage
    from backend.monocular import reconstruct_monocular
    from backend.pipeline import output_positions
    from backend.reconstruct import Models, Progress, Settings, reconstruct
    from backend.server.events import EventLog

    request = json.loads((folder / "job.json").read_text())["request"]
    log = EventLog(folder)
    settings = Settings.for_quality(request["quality"], stride=request["stride"], target_faces=request.get("faces"),
                                    texture_size=request.get("texture_size"), retime=request["retime"],
                                    times=request.get("times"), fit_steps=request.get("fit_steps"))
    estimate: Estimate | None = None

    log.append(Event.STAGE, stage="decode", fraction=0.0, eta_s=None)
    given = [request.get("clip"), *(request.get("views") or []), *(request.get("masks") or []), request.get("mask")]
    for gap in sequence_gaps([Path(g) for g in given if g]):
        log.append(Event.LOG, message=f"warning: {gap}")
    models = Models.load(checkpoints, device)
    cameras: list[Camera] | None = [camera_from_json(c) for c in request["cameras"]] if request.get("cameras") else None
    monocular = bool(request.get("monocular"))
    if monocular:
        clip = None
        info = probe_footage(Path(request["views"][0]))  # its first frame too: the size as shown
        frames = min(info.frames, request.get("frame_end") or info.frames) - request["frame_start"]
        log.append(Event.LOG, message=f"monocular clip: {frames} frame(s) at {info.width}x{info.height}; "
                                      f"generating the other views of every keyframe")
    else:
        clip = load_clip(Path(request["clip"]) if request.get("clip") else None,
                         [Path(v) for v in request.get("views") or []], cameras, request["frame_start"],
                         request.get("frame_end"),
                         [m and Path(m) for m in request["masks"]] if request.get("masks") else None,
                         view_side(settings.texture_size), request.get("sequence_fps"), request.get("view_offsets"))
        frames = clip.frames.shape[1]
        log.append(Event.LOG, message=f"{clip.frames.shape[0]} view(s) x {frames} frame(s) at "
                                      f"{clip.frames.shape[3]}x{clip.frames.shape[2]}")
    count = len(output_positions(frames, settings.retime, settings.times))
    estimate = Estimate(count, settings.gaussians, monocular, settings.texture_from_footage and settings.texture_over_time)
    estimate.enter("decode")
    log.append(Event.LOG, message=f"{count} output frame(s)")

    def on_event(kind: str, value: Any) -> None:
        if kind == "stage":
            estimate.enter(value)
            log.append(Event.STAGE, stage=value, **estimate.report())
        elif kind == "mesh":
            log.append(Event.MESH, **value)
        elif kind == "texture":
            log.append(Event.TEXTURE, **value)
        elif kind == "frame":
            index, position = value
            estimate.frames_done = index + 1
            log.append(Event.FRAME, frame=index, position=position, **estimate.report())

    if monocular:
        manifest = reconstruct_monocular(Path(request["views"][0]), models, folder / "result", settings,
                                         Progress(on_event), cameras[0] if cameras else None, request["frame_start"],
                                         request.get("frame_end"), Path(request["mask"]) if request.get("mask") else None,
                                         request.get("elevation_deg", 10.0), request.get("seed", 0),
                                         request.get("sequence_fps"))
    else:
        manifest = reconstruct(clip, models, folder / "result", settings, Progress(on_event))
    log.append(Event.LOG, message="stage timings (s): " + ", ".join(f"{k} {v}" for k, v in manifest["timings_s"].items()))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.server.worker")
    parser.add_argument("folder")
    parser.add_argument("--checkpoints", required=True)
    parser.add_argument("--parent-pid", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.parent_pid:
        die_with_parent(args.parent_pid)
    folder = Path(args.folder)
    try:
        return run_job(folder, Path(args.checkpoints), args.device)
    except (ValueError, FileNotFoundError, OSError) as error:  # bad input or missing files: the user can act on it
        (folder / "result" / "error.txt").write_text(f"{type(error).__name__}: {error}")
        print(f"job failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


assert set(STAGE_WEIGHTS) == set(STAGES), "every stage needs a weight"

if __name__ == "__main__":
    sys.exit(main())
