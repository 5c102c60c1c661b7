"""Jobs on disk and the queue that runs them, one at a time, each in its own worker process.

    JOBS/<id>/job.json       state, request, times, error (rewritten atomically)
    JOBS/<id>/events.jsonl   the event log (see events.py)
    JOBS/<id>/inputs/        uploaded files, when the job came as a multipart upload
    JOBS/<id>/result/        the reconstruction's job folder (mesh.npz, texture.png, frames/, ...)
    JOBS/<id>/worker.log     the worker's stdout and stderr

A worker process per job makes cancel immediate and certain (the process is stopped; frames already
written stay, as each is written atomically) and keeps a crashing job from taking the server with it.
A restarted server finds every job again: finished ones are served, one that was running is marked
failed with the reason and keeps its frames, queued ones run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

from backend.protocol import Event, JobState
from backend.server.events import EventLog

JOB_ID = re.compile(r"^[0-9a-f]{32}$")
STOP_GRACE_S = 0.5  # after SIGTERM, before SIGKILL: cancel must land within 2 s


class JobStore:
    """The job folders under ``root``; every read goes to disk, so a restart loses nothing."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def folder(self, job_id: str) -> Path | None:
        """The folder of an existing job; None for unknown or malformed ids (never a path outside root)."""
        if not JOB_ID.match(job_id):
            return None
        folder = self.root / job_id
        return folder if (folder / "job.json").is_file() else None

    def new_folder(self) -> tuple[str, Path]:
        job_id = uuid.uuid4().hex
        folder = self.root / job_id
        (folder / "result" / "frames").mkdir(parents=True)
        return job_id, folder

    def create(self, job_id: str, request: dict[str, Any]) -> dict[str, Any]:
        record = {"id": job_id, "state": JobState.QUEUED, "request": request, "created": time.time(),
                  "started": None, "finished": None, "error": None}
        self._write(job_id, record)
        EventLog(self.root / job_id).append(Event.QUEUED)
        return record

    def get(self, job_id: str) -> dict[str, Any] | None:
        folder = self.folder(job_id)
        if folder is None:
            return None
        record = json.loads((folder / "job.json").read_text())
        record["frames_done"] = frames_done(folder)
        return record

    def all(self) -> list[dict[str, Any]]:
        records = [self.get(p.name) for p in self.root.iterdir() if p.is_dir()]
        return sorted((r for r in records if r), key=lambda r: r["created"], reverse=True)

    def update(self, job_id: str, **fields: Any) -> dict[str, Any]:
        with self._lock:
            record = json.loads((self.root / job_id / "job.json").read_text())
            record.update(fields)
            self._write(job_id, record)
        return record

    def delete(self, job_id: str) -> None:
        shutil.rmtree(self.root / job_id)

    def recover(self) -> list[str]:
        """After a restart: fail what was running (it died with the old server); return queued ids, oldest first."""
        queued = []
        for record in reversed(self.all()):
            if record["state"] == JobState.RUNNING:
                done = record["frames_done"]
                reason = f"the backend stopped while this job ran; {done} finished frame(s) kept"
                self.finish(record["id"], JobState.FAILED, reason)
            elif record["state"] == JobState.QUEUED:
                queued.append(record["id"])
        return queued

    def finish(self, job_id: str, state: str, error: str | None = None) -> None:
        folder = self.root / job_id
        done = frames_done(folder)
        self.update(job_id, state=state, finished=time.time(), error=error)
        data: dict[str, Any] = {"frames": done}
        if error:
            data["error"] = error
        EventLog(folder).append({JobState.DONE: Event.DONE, JobState.FAILED: Event.FAILED,
                                 JobState.CANCELLED: Event.CANCELLED}[state], **data)

    def _write(self, job_id: str, record: dict[str, Any]) -> None:
        path = self.root / job_id / "job.json"
        partial = path.with_name("job.json.partial")
        partial.write_text(json.dumps({k: v for k, v in record.items() if k != "frames_done"}, indent=1))
        os.replace(partial, path)


def frames_done(folder: Path) -> int:
    frames = folder / "result" / "frames"
    return sum(1 for _ in frames.glob("frame_*.npy")) if frames.is_dir() else 0


class JobRunner:
    """A FIFO queue and the thread that runs it: one job at a time on this backend's device."""

    def __init__(self, store: JobStore, checkpoints: Path, device: str = "cpu") -> None:
        self.store = store
        self.checkpoints = Path(checkpoints)
        self.device = device
        self._queue: deque[str] = deque()
        self._wake = threading.Condition()
        self._running: str | None = None
        self._process: subprocess.Popen | None = None
        self._cancel = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="lim4d-jobs", daemon=True)

    def start(self) -> None:
        for job_id in self.store.recover():
            self.submit(job_id)
        self._thread.start()

    @property
    def running(self) -> str | None:
        return self._running

    def queued(self) -> list[str]:
        with self._wake:
            return list(self._queue)

    def submit(self, job_id: str) -> None:
        with self._wake:
            self._queue.append(job_id)
            self._wake.notify()

    def cancel(self, job_id: str, timeout: float = 2.0) -> str:
        """Stop a queued or running job; returns its state afterwards (a finished job is left as it is)."""
        with self._wake:
            if job_id in self._queue:
                self._queue.remove(job_id)
                self.store.finish(job_id, JobState.CANCELLED)
                return JobState.CANCELLED
            running = self._running == job_id
            if running:
                self._cancel.set()
        if running:
            deadline = time.monotonic() + timeout
            while self._running == job_id and time.monotonic() < deadline:
                time.sleep(0.02)
        return self.store.get(job_id)["state"]

    def shutdown(self) -> None:
        """Stop the running worker (its job is marked failed, frames kept) and the queue thread."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._process is not None and self._process.poll() is None:
            _stop(self._process)
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._queue and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
                job_id = self._queue.popleft()
                self._running = job_id
                self._cancel.clear()
            try:
                self._run(job_id)
            except Exception as error:  # the queue must outlive any one job
                self.store.finish(job_id, JobState.FAILED, f"internal error: {error}")
            finally:
                self._running = None
                self._process = None

    def _run(self, job_id: str) -> None:
        folder = self.store.root / job_id
        self.store.update(job_id, state=JobState.RUNNING, started=time.time())
        EventLog(folder).append(Event.STARTED)
        with open(folder / "worker.log", "ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "backend.server.worker", str(folder), "--checkpoints", str(self.checkpoints),
                 "--parent-pid", str(os.getpid()), "--device", self.device],
                stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[2],
                env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
            while self._process.poll() is None:
                if self._cancel.is_set() or self._stopping:
                    _stop(self._process)
                    break
                time.sleep(0.02)
        code = self._process.wait()
        if self._cancel.is_set():
            self.store.finish(job_id, JobState.CANCELLED)
        elif self._stopping:
            self.store.finish(job_id, JobState.FAILED, f"the backend shut down; {frames_done(folder)} finished frame(s) kept")
        elif code == 0:
            self.store.finish(job_id, JobState.DONE)
        else:
            self.store.finish(job_id, JobState.FAILED, worker_error(folder, code))


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the worker's process group, SIGKILL it if it is still there after a moment."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


def worker_error(folder: Path, code: int) -> str:
    """The reason the worker left in error.txt, or the end of its log."""
    reason = folder / "result" / "error.txt"
    if reason.is_file():
        return reason.read_text().strip()
    tail = (folder / "worker.log").read_text(errors="replace").strip().splitlines()[-3:] if (folder / "worker.log").exists() else []
    how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
    return f"the worker {how}" + (": " + " | ".join(tail) if tail else "")
