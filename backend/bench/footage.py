"""`python -m backend bench footage`: what reading a long high-resolution clip costs.

A synthetic clip (a disc swinging over a plain backdrop, H.264) at a phone's resolution; a job's decode stage
timed in a fresh child process for a 32-frame range and for the whole clip, with the child's peak resident
memory: monocular (`load_monocular`: decode, matte, framing) and multi-view, the clip as each of four views
(`load_clip`: decode, matte, put on white). Each in its own process, so one peak does not hide another.
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

SECTION = "Reading long footage (`bench footage`)"
HEADER = ["date", "device", "clip", "frames read", "decode stage (decode, matte, framing or on white), s", "peak memory, MiB"]


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


MULTI_VIEWS = 4


def measure(path: Path, frame_end: int | None, views: int = 1) -> dict:
    """In this process: the decode stage of a monocular job on ``path`` (``views`` 1), or of a multi-view job that sees
    it from ``views`` cameras; seconds and peak RSS."""
    started = time.perf_counter()
    if views == 1:
        from backend.monocular import load_monocular

        count = len(load_monocular(path, 64, 0, frame_end).frames)
    else:
        from backend.io.cameras import Camera
        from backend.io.clip_source import load_clip
        from backend.io.video import probe_video

        info = probe_video(path)
        focal = 0.8 * max(info.width, info.height)
        camera = Camera([[focal, 0, info.width / 2], [0, focal, info.height / 2], [0, 0, 1]], np.eye(4), info.width, info.height)
        count = load_clip(views=[Path(path)] * views, cameras=[camera] * views, frame_end=frame_end).frames.shape[1]
    return {"frames": count, "seconds": time.perf_counter() - started,
            "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run(frames: int, width: int, height: int, results: Path, json_path: Path | None) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        clip = Path(scratch) / "long.mp4"
        print(f"writing a {frames}-frame {width}x{height} clip ...")
        write_long_clip(clip, frames, width, height)
        figures = {}
        for name, end, views in (("range", 32, 1), ("whole", None, 1), ("views_range", 32, MULTI_VIEWS),
                                 ("views_whole", None, MULTI_VIEWS)):
            code = (f"import json; from backend.bench.footage import measure; "
                    f"print(json.dumps(measure({str(clip)!r}, {end}, {views})))")
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  cwd=Path(__file__).resolve().parents[2])
            if done.returncode:
                figures[name] = {"error": (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]}
            else:
                figures[name] = json.loads(done.stdout.strip().splitlines()[-1])
            print(name, figures[name])
    device = device_description()
    for name, figure in figures.items():
        read = f"{figure.get('frames', '?')} ({'frames 0–31' if name.endswith('range') else 'all'})"
        cells = ([f"{figure['seconds']:.1f}", f"{figure['peak_mib']:.0f}"] if "seconds" in figure
                 else [figure["error"], "–"])
        seen = f"{MULTI_VIEWS} views of " if name.startswith("views") else ""
        append_row(results, SECTION, HEADER, [today(), device, f"{seen}{frames} × {width}x{height} H.264", read, *cells])
    if json_path:
        json_path.write_text(json.dumps({"device": device, "clip": [frames, width, height], **figures}, indent=2))
    return figures
