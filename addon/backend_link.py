"""The add-on's one backend: a local process started on demand (free port, token file, --parent-pid),
health-checked and restarted if it died; or a remote URL + token. Plain Python, no bpy state."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..backend.client import BackendError, BackendProcess, Client

EXTENSION_ROOT = Path(__file__).resolve().parents[1]  # holds backend/, requirements.txt


@dataclass
class LocalSettings:
    python: str  # the backend environment's interpreter
    cache: Path  # jobs/, token, backend.log live here
    checkpoints: Path = field(default_factory=lambda: EXTENSION_ROOT / "backend" / "checkpoints")
    device: str = "auto"  # serve --device: auto, cpu or cuda


class Link:
    def __init__(self) -> None:
        self.process: BackendProcess | None = None
        self.client: Client | None = None
        self.health: dict | None = None
        self.error = ""
        self.log_path: Path | None = None
        self.device = ""  # the device the local backend was started for

    def status_line(self) -> str:
        if self.error:
            return f"error: {self.error}"
        if self.health is None:
            return "not connected"
        where = "local" if self.process else "remote"
        return f"{where} {self.client.url}, {self.health.get('device')}, lim4d {self.health.get('version')}"

    def connect_remote(self, url: str, token: str) -> Client:
        self.stop()
        client = Client(url, token)
        return self._check(client)

    def connect_local(self, settings: LocalSettings) -> Client:
        """The running local backend if it answers, else a fresh one (so a killed backend comes back)."""
        same_device = self.device == settings.device
        if self.process is not None and self.process.alive() and self.client is not None and same_device:
            try:
                return self._check(self.client)
            except BackendError:
                pass
        self.stop()
        if not settings.python or not Path(settings.python).is_file():
            self.error = f"no backend Python at {settings.python!r}: set it in the preferences or create the environment"
            raise BackendError(self.error)
        settings.cache.mkdir(parents=True, exist_ok=True)
        token_file = settings.cache / "token"
        self.log_path = settings.cache / "backend.log"
        try:
            self.process = BackendProcess.start(settings.python, EXTENSION_ROOT, settings.checkpoints, settings.cache / "jobs",
                                                parent_pid=os.getpid(), log=self.log_path,
                                                extra=["--token-file", str(token_file), "--device", settings.device])
        except (BackendError, OSError) as error:
            self.error = str(error)
            raise BackendError(self.error) from None
        self.device = settings.device
        return self._check(Client(self.process.url, token_file.read_text().strip()))

    def _check(self, client: Client) -> Client:
        try:
            self.health = client.health()
        except BackendError as error:
            self.error, self.health = str(error), None
            raise
        self.client, self.error = client, ""
        return client

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
        self.process, self.client, self.health = None, None, None


LINK = Link()

