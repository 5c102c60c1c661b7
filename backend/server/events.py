"""A job's event log: one JSON object per line in ``events.jsonl``, its line number the event id.

Exactly one process writes a job's log at a time (the server before and after the worker, the worker
while it runs), so ids are dense and ordered; readers follow the file from any id, which is what
makes the server-sent event stream resumable with Last-Event-ID, even across a backend restart.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

EVENTS_FILE = "events.jsonl"


class EventLog:
    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / EVENTS_FILE
        self._next_id: int | None = None  # a writer counts the lines once, then keeps count

    def count(self) -> int:
        if not self.path.exists():
            return 0
        with open(self.path, "rb") as handle:
            return sum(1 for line in handle if line.endswith(b"\n"))

    def append(self, kind: str, **data: Any) -> dict[str, Any]:
        """Append an event and make it durable before returning (a reader may announce it at once)."""
        if self._next_id is None:
            self._next_id = self.count()
        event = {"id": self._next_id, "type": kind, "time": round(time.time(), 3), **data}
        self._next_id += 1
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(event) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return event

    def read(self, after: int = -1, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Complete events with id > ``after``, reading from byte ``offset``; returns them and the next offset."""
        if not self.path.exists():
            return [], offset
        events = []
        with open(self.path, "rb") as handle:
            handle.seek(offset)
            for line in handle:
                if not line.endswith(b"\n"):
                    break  # a line still being written: read it next time
                offset += len(line)
                event = json.loads(line)
                if event["id"] > after:
                    events.append(event)
        return events, offset

    def last(self) -> dict[str, Any] | None:
        events, _ = self.read()
        return events[-1] if events else None
