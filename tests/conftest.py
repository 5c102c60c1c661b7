import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# One thread per process: `make test` runs two workers on two cores, and each starts backends and
# Blender. Two-thread torch processes on cores already taken spin in OpenMP barriers; the monocular
# end-to-end job took 284 s that way and 33 s with one thread. Children inherit the setting.
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def run_backend(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m backend ARGS` as a real child process from the repository root."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "backend", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def shared_assets() -> Path:
    path = SHARED / "data" / "assets"
    if not path.is_dir():
        pytest.skip("../shared/data/assets is not present")
    return path


class Backend:
    """A real `python -m backend serve` process on loopback, with its URL and token."""

    def __init__(self, jobs: Path, *extra: str, checkpoints: Path | None = None) -> None:
        self.jobs = jobs
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        command = [sys.executable, "-m", "backend", "serve", "--port", "0", "--jobs", str(jobs),
                   "--checkpoints", str(checkpoints or REPO / "backend" / "checkpoints"), *extra]
        self.process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = self.process.stdout.readline()
        if not first:
            raise RuntimeError(f"the backend did not start: {self.process.stderr.read()[-2000:]}")
        self.info = json.loads(first)
        self.url, self.token = self.info["url"], self.info.get("token")
        self.headers = {"Authorization": f"Bearer {self.token}"}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def over_noise(seed: int, views: int, frames: int) -> tuple[list, np.ndarray, np.ndarray, np.ndarray]:
    """A world clip's views over a backdrop of coloured noise, where no automatic matte finds the object: its
    cameras, times, the filmed frames (V, F, H, W, 3) and the true masks (V, F, H, W)."""
    from backend.world.clip import render_world_clip

    _, cameras, times, render = render_world_clip(seed, views=views, frames=frames, size=64)
    noise = np.random.default_rng(1).uniform(0, 1, size=render.rgb.shape).astype(np.float32)
    alpha = render.alpha[..., None]
    filmed = np.clip((render.rgb * alpha + noise * (1 - alpha)) * 255 + 0.5, 0, 255).astype(np.uint8)
    return cameras, times, filmed, render.alpha > 0.5


def write_views(folder: Path, filmed: np.ndarray, masks: np.ndarray) -> tuple[list[Path], list[Path]]:
    """Each view's footage and its mask clip (white = object) as videos in ``folder``."""
    from backend.io.video import write_mask_clip, write_mp4

    folder.mkdir(exist_ok=True)
    views, mask_clips = [], []
    for view in range(len(filmed)):
        views.append(folder / f"view_{view:02d}.mp4")
        write_mp4(views[-1], filmed[view], fps=12)
        mask_clips.append(folder / f"mask_{view:02d}.mp4")
        write_mask_clip(mask_clips[-1], masks[view], fps=12)
    return views, mask_clips


def write_turned(path: Path, upright: np.ndarray, degrees: int, hflip: bool = False, vflip: bool = False,
                 fps: float = 12) -> None:
    """Footage (F, H, W, 3) stored as phones store it: the pixels turned back by ``degrees`` (and mirrored), with a
    display matrix (PyAV: a counter-clockwise turn, then the mirrors) that shows them upright again."""
    import av

    stored = upright[:, ::-1] if vflip else upright
    stored = stored[:, :, ::-1] if hflip else stored
    stored = np.ascontiguousarray(np.rot90(stored, -degrees // 90, axes=(1, 2)))
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=round(fps))
        stream.height, stream.width = stored.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "12"}
        stream.set_display_rotation(degrees, hflip=hflip, vflip=vflip)
        for frame in stored:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
