"""`python -m backend bench footage`: what reading a long high-resolution monocular clip costs.

A synthetic clip (a disc swinging over a plain backdrop, H.264) at a phone's resolution; a job's decode stage
(`load_monocular`: decode, matte, framing) timed in a fresh child process for a 32-frame range and for the whole
clip, with the child's peak resident memory. Each in its own process, so one peak does not hide another.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from backend.bench.results import append_row, device_description, today

SECTION = "Reading long footage (bench footage)"
HEADER = ["date", "device", "clip", "frames read", "decode + matte + framing, s", "peak memory, MiB"]


def write_long_clip(path: Path, frames: int, width: int, height: int, fps: int = 30) -> None:
    import av

    yy, xx = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "20"}
        for index in range(frames):
            image = np.full((height, width, 3), 120, np.uint8)
            cx, radius = width / 2 + 0.25 * width * np.sin(index / 15), height / 5
            image[(xx - cx) ** 2 + (yy - height / 2) ** 2 < radius**2] = (200, 70, 40)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


def measure(path: Path, frame_end: int | None) -> dict:
    """In this process: the decode stage of a monocular job on ``path``; seconds and peak RSS."""
    from backend.monocular import load_monocular

    started = time.perf_counter()
    footage = load_monocular(path, 64, 0, frame_end)
    return {"frames": len(footage.frames), "seconds": time.perf_counter() - started,
            "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run(frames: int, width: int, height: int, results: Path, json_path: Path | None) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        clip = Path(scratch) / "long.mp4"
        print(f"writing a {frames}-frame {width}x{height} clip ...")
        write_long_clip(clip, frames, width, height)
        figures = {}
        for name, end in (("range", 32), ("whole", None)):
            code = f"import json; from backend.bench.footage import measure; print(json.dumps(measure({str(clip)!r}, {end})))"
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  cwd=Path(__file__).resolve().parents[2])
            if done.returncode:
                figures[name] = {"error": (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]}
            else:
                figures[name] = json.loads(done.stdout.strip().splitlines()[-1])
            print(name, figures[name])
    device = device_description()
    for name, figure in figures.items():
        read = f"{figure.get('frames', '?')} ({'frames 0–31' if name == 'range' else 'all'})"
        cells = ([f"{figure['seconds']:.1f}", f"{figure['peak_mib']:.0f}"] if "seconds" in figure
                 else [figure["error"], "–"])
        append_row(results, SECTION, HEADER, [today(), device, f"{frames} × {width}x{height} H.264", read, *cells])
    if json_path:
        json_path.write_text(json.dumps({"device": device, "clip": [frames, width, height], **figures}, indent=2))
    return figures
