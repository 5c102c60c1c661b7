"""`python -m backend bench service`: the backend as the add-on meets it, through a real server process.

  event latency      from a frame's event being written (worker clock) to the client reading it
  frames per second  frame events (and their vertex downloads) per second during tracking
  soak               N consecutive jobs; the server's RSS after the first and after the last
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

from backend.bench.results import append_row, device_description
from backend.client import BackendProcess, Client
from backend.protocol import Event
from backend.world.clip import write_world_clip

REPO = Path(__file__).resolve().parents[2]


def run_job(client: Client, request: dict) -> dict:
    """One job, downloading each frame as its event arrives (as the add-on does); latencies and rates."""
    job = client.create(request)
    latencies, fetches, frame_times = [], [], []
    for event in client.events(job["id"]):
        received = time.time()
        if event["type"] == Event.FRAME:
            latencies.append(received - event["time"])
            started = time.perf_counter()
            data, shape = client.frame(job["id"], event["frame"])
            np.frombuffer(data, dtype="<f4").reshape(shape)
            fetches.append(time.perf_counter() - started)
            frame_times.append(received)
        elif event["type"] in Event.TERMINAL and event["type"] != Event.DONE:
            raise RuntimeError(f"job {job['id']} ended {event['type']}: {event.get('error')}")
    span = frame_times[-1] - frame_times[0] if len(frame_times) > 1 else float("nan")
    return {"latencies": latencies, "fetches": fetches, "frames_per_s": (len(frame_times) - 1) / span}


def run(seed: int, frames: int, soak: int, json_path: Path | None, results: Path) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        clip = Path(scratch) / "clip"
        write_world_clip(clip, seed=seed, views=3, frames=frames, size=64)
        backend = BackendProcess.start(sys.executable, REPO, REPO / "backend" / "checkpoints", Path(scratch) / "jobs")
        try:
            client = Client(backend.url, backend.token)
            server = psutil.Process(backend.process.pid)
            request = {"clip": str(clip), "quality": "preview"}
            runs, rss = [], []
            for index in range(soak):
                runs.append(run_job(client, request))
                rss.append(server.memory_info().rss / 2**20)
                print(f"job {index + 1}/{soak}: {runs[-1]['frames_per_s']:.2f} frames/s, server RSS {rss[-1]:.0f} MiB")
        finally:
            backend.stop()
    latencies = [x * 1000 for r in runs for x in r["latencies"]]
    fetches = [x * 1000 for r in runs for x in r["fetches"]]
    figures = {
        "device": device_description(), "seed": seed, "frames": frames, "jobs": soak,
        "event_latency_ms_median": round(statistics.median(latencies), 1),
        "event_latency_ms_p95": round(float(np.percentile(latencies, 95)), 1),
        "frame_fetch_ms_median": round(statistics.median(fetches), 2),
        "frames_per_s_median": round(statistics.median(r["frames_per_s"] for r in runs), 2),
        "rss_mib_first": round(rss[0], 1), "rss_mib_last": round(rss[-1], 1),
        "rss_growth_pct": round(100 * (rss[-1] - rss[0]) / rss[0], 1),
    }
    print(json.dumps(figures, indent=1))
    if json_path:
        json_path.write_text(json.dumps(figures, indent=1))
    append_row(results, "Backend service (bench service)",
               ["date", "device", "jobs × frames", "event latency median / p95 (ms)", "frame fetch (ms)",
                "frames/s", "server RSS first → last (MiB)", "RSS growth"],
               [time.strftime("%Y-%m-%d"), figures["device"], f"{soak} × {frames}",
                f"{figures['event_latency_ms_median']} / {figures['event_latency_ms_p95']}",
                str(figures["frame_fetch_ms_median"]), str(figures["frames_per_s_median"]),
                f"{figures['rss_mib_first']} → {figures['rss_mib_last']}", f"{figures['rss_growth_pct']} %"])
    return 0
