"""A client for the backend's HTTP API, stdlib only: the Blender add-on uses it, and so do the benchmarks.

    process = BackendProcess.start(python, checkpoints=..., jobs=...)   # or connect to a remote URL + token
    client = Client(process.url, process.token)
    job = client.create({"clip": "/path/clip", "quality": "preview"})
    for event in client.events(job["id"]):          # resumes from the last id seen if the connection drops
        ...
    vertices, shape = client.frame(job["id"], 0)    # raw float32 bytes and (N, 3)
"""

from __future__ import annotations

import http.client
import io
import json
import subprocess
import time
import urllib.parse
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .protocol import LISTENING, SHAPE_HEADER, Event, image_sequence

STARTUP_TIMEOUT_S = 60.0


class BackendError(RuntimeError):
    """The backend answered with an error (status and its message) or could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Client:
    def __init__(self, url: str, token: str, timeout: float = 30.0) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise BackendError(f"not a backend URL: {url!r}")
        self.url, self.token, self.timeout = url.rstrip("/"), token, timeout
        self._parsed = parsed

    def _connection(self, timeout: float | None = None) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self._parsed.scheme == "https" else http.client.HTTPConnection
        return kind(self._parsed.hostname, self._parsed.port, timeout=timeout or self.timeout)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                timeout: float | None = None) -> tuple[bytes, dict[str, str]]:
        connection = self._connection(timeout)
        try:
            connection.request(method, path, body=body, headers={"Authorization": f"Bearer {self.token}", **(headers or {})})
            response = connection.getresponse()
            data = response.read()
            if response.status >= 400:
                try:
                    detail = json.loads(data).get("detail", data.decode(errors="replace"))
                except (ValueError, AttributeError):
                    detail = data.decode(errors="replace")
                raise BackendError(f"{method} {path}: {response.status} {detail}", response.status)
            return data, {k.lower(): v for k, v in response.getheaders()}
        except (OSError, http.client.HTTPException) as error:
            raise BackendError(f"cannot reach the backend at {self.url} ({error})") from None
        finally:
            connection.close()

    def json(self, method: str, path: str, payload: Any = None) -> Any:
        body = None if payload is None else json.dumps(payload).encode()
        data, _ = self.request(method, path, body, {"Content-Type": "application/json"} if body else None)
        return json.loads(data) if data else None

    def health(self) -> dict[str, Any]:
        return self.json("GET", "/health")

    def create(self, request: dict[str, Any]) -> dict[str, Any]:
        return self.json("POST", "/jobs", request)

    def upload(self, request: dict[str, Any], cameras: list[dict[str, Any]], videos: list[Path],
               masks: list[Path | None] | None = None) -> dict[str, Any]:
        """Send the videos themselves (a backend on another machine); cameras in the clip-folder or Blender form;
        ``masks``: a mask clip per view (None: the backend mattes that view), sent beside them. An image sequence
        (``protocol.image_sequence``) goes as a .zip of its images."""
        boundary = uuid.uuid4().hex
        sent = {str(p): _upload_form(Path(p)) for p in [*videos, *(m for m in masks or [] if m)]}  # (bytes, suffix)
        names = [None if m is None else f"mask_{i:02d}{sent[str(m)][1]}" for i, m in enumerate(masks)] if masks else None
        request = {**request, "masks": names} if names else request
        parts = [_form_part(boundary, "request", json.dumps(request).encode()),
                 _form_part(boundary, "cameras", json.dumps({"views": cameras}).encode(), "cameras.json")]
        parts += [_form_part(boundary, "views", sent[str(v)][0], f"{Path(v).stem}{sent[str(v)][1]}") for v in videos]
        parts += [_form_part(boundary, "masks", sent[str(m)][0], n) for m, n in zip(masks or [], names or [], strict=True) if m]
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        data, _ = self.request("POST", "/jobs/upload", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"},
                               timeout=max(self.timeout, 600))
        return json.loads(data)

    def status(self, job_id: str) -> dict[str, Any]:
        return self.json("GET", f"/jobs/{job_id}")

    def jobs(self) -> list[dict[str, Any]]:
        return self.json("GET", "/jobs")

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self.json("POST", f"/jobs/{job_id}/cancel")

    def mesh(self, job_id: str) -> bytes:
        return self.request("GET", f"/jobs/{job_id}/mesh")[0]

    def texture(self, job_id: str) -> bytes:
        return self.request("GET", f"/jobs/{job_id}/texture")[0]

    def file(self, job_id: str, name: str) -> bytes:
        return self.request("GET", f"/jobs/{job_id}/files/{name}")[0]

    def log(self, job_id: str) -> str:
        return self.request("GET", f"/jobs/{job_id}/log")[0].decode(errors="replace")

    def frame(self, job_id: str, index: int) -> tuple[bytes, tuple[int, ...]]:
        """Frame ``index``'s vertex positions: little-endian float32 bytes and their shape (N, 3)."""
        data, headers = self.request("GET", f"/jobs/{job_id}/frames/{index}")
        return data, tuple(int(n) for n in headers[SHAPE_HEADER.lower()].split(","))

    def events(self, job_id: str, after: int = -1, retries: int = 5) -> Iterator[dict[str, Any]]:
        """Every event after id ``after`` until the job ends; a dropped connection resumes from the last id."""
        failures = 0
        while True:
            try:
                for event in self._stream(job_id, after):
                    failures = 0
                    after = event["id"]
                    yield event
                    if event["type"] in Event.TERMINAL:
                        return
                raise ConnectionError("the stream closed before the job ended")
            except (OSError, http.client.HTTPException) as error:
                failures += 1
                if failures > retries:
                    raise BackendError(f"lost the event stream of job {job_id} ({error})") from None
                time.sleep(min(0.2 * 2**failures, 5.0))

    def _stream(self, job_id: str, after: int) -> Iterator[dict[str, Any]]:
        connection = self._connection(timeout=60)
        try:
            connection.request("GET", f"/jobs/{job_id}/events",
                               headers={"Authorization": f"Bearer {self.token}", "Last-Event-ID": str(after)})
            response = connection.getresponse()
            if response.status >= 400:
                raise BackendError(f"events of job {job_id}: {response.status} {response.read()[:300]!r}", response.status)
            data = None
            while line := response.readline():
                text = line.decode().rstrip("\r\n")
                if text.startswith("data: "):
                    data = text[6:]
                elif text == "" and data is not None:
                    yield json.loads(data)
                    data = None
        finally:
            connection.close()


def _upload_form(path: Path) -> tuple[bytes, str]:
    """A file's bytes and suffix as uploaded: a video as it is, an image sequence as a .zip of its images (stored:
    they are compressed already)."""
    files = image_sequence(path)
    if files is None:
        return path.read_bytes(), path.suffix
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w", zipfile.ZIP_STORED) as archive:
        for file in files:
            archive.write(file, file.name)
    return packed.getvalue(), ".zip"


def _form_part(boundary: str, name: str, content: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n"


@dataclass
class BackendProcess:
    """A backend started by us: `python -m backend serve --port 0`, its address read from its first line."""

    process: subprocess.Popen
    url: str
    token: str

    @staticmethod
    def start(python: str, root: Path, checkpoints: Path, jobs: Path, parent_pid: int | None = None,
              log: Path | None = None, extra: list[str] | None = None) -> BackendProcess:
        command = [python, "-m", "backend", "serve", "--port", "0", "--checkpoints", str(checkpoints), "--jobs", str(jobs),
                   *(["--parent-pid", str(parent_pid)] if parent_pid else []), *(extra or [])]
        stderr = open(log, "ab") if log else subprocess.DEVNULL
        process = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, stderr=stderr)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        line = process.stdout.readline()  # blocks until the first line or the process ends
        if not line or time.monotonic() > deadline:
            process.kill()
            raise BackendError(f"the backend did not start (exit code {process.wait()}); see {log or 'its stderr'}")
        info = json.loads(line)
        if info.get("lim4d") != LISTENING:
            process.kill()
            raise BackendError(f"unexpected first line from the backend: {line[:200]!r}")
        return BackendProcess(process, info["url"], info.get("token", ""))

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
