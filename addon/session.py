"""One import in flight: a worker thread follows the job's events and downloads results; plain data only.

The thread never touches bpy. It puts messages on a queue that the main thread drains (a timer or a
modal operator calls `drain_all`; tests call it directly, as timers never fire in bpy-as-module):

    ("progress", {"stage", "fraction", "eta_s"})     ("log", text)
    ("mesh", {"vertices", "faces", "uvs", "texture", "frames", "fps", "positions", "world_transform"})
    ("frame", index, position, vertices (N, 3) float32)
    ("texture", png bytes)                        the texture repainted once every frame is tracked
    ("end", state, error or None)
"""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from ..backend.client import BackendError, Client
from ..backend.protocol import Event, JobState

SESSIONS: dict[str, Session] = {}  # import key -> session, for the drain


class Session:
    def __init__(self, key: str, client: Client, job_id: str, have_frames: set[int] | None = None) -> None:
        self.key, self.client, self.job_id = key, client, job_id
        self.messages: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self.have_frames = set(have_frames or ())  # already imported (a resumed or retried import skips them)
        self.stop = threading.Event()
        self.finished = False
        self.thread = threading.Thread(target=self._follow, name=f"lim4d-{job_id[:8]}", daemon=True)

    def start(self) -> Session:
        SESSIONS[self.key] = self
        self.thread.start()
        return self

    def _follow(self) -> None:
        mesh_sent = False
        try:
            for event in self.client.events(self.job_id):
                if self.stop.is_set():
                    return
                kind = event["type"]
                if kind == Event.STAGE:
                    self.messages.put(("progress", {k: event.get(k) for k in ("stage", "fraction", "eta_s")}))
                elif kind == Event.LOG:
                    self.messages.put(("log", event["message"]))
                elif kind == Event.MESH:
                    self.messages.put(("mesh", self._mesh(event)))
                    mesh_sent = True
                elif kind == Event.FRAME:
                    if not mesh_sent:  # resumed after the mesh event: fetch it first
                        self.messages.put(("mesh", self._mesh({})))
                        mesh_sent = True
                    if event["frame"] not in self.have_frames:
                        self.messages.put(("frame", event["frame"], event["position"], self._frame(event["frame"])))
                    self.messages.put(("progress", {"stage": "tracking", "fraction": event.get("fraction"),
                                                    "eta_s": event.get("eta_s")}))
                elif kind == Event.TEXTURE:
                    if not mesh_sent:
                        self.messages.put(("mesh", self._mesh({})))
                        mesh_sent = True
                    try:  # an object that already existed (a resumed import) keeps its image until this replaces it
                        self.messages.put(("texture", self.client.texture(self.job_id)))
                    except BackendError as error:  # every frame is in: a missed texture is no failed import
                        self.messages.put(("log", f"could not fetch the repainted texture: {error}"))
                elif kind in Event.TERMINAL:
                    self.messages.put(("end", {Event.DONE: JobState.DONE, Event.FAILED: JobState.FAILED,
                                               Event.CANCELLED: JobState.CANCELLED}[kind], event.get("error")))
                    return
            self.messages.put(("end", JobState.FAILED, "the event stream ended early"))
        except BackendError as error:
            self.messages.put(("end", JobState.FAILED, f"lost the backend: {error}"))
        except Exception as error:  # anything else must still reach the UI as a clear state
            self.messages.put(("end", JobState.FAILED, f"{type(error).__name__}: {error}"))

    def _mesh(self, info: dict[str, Any]) -> dict[str, Any]:
        mesh = np.load(io.BytesIO(self.client.mesh(self.job_id)))
        # a resumed stream may start after the mesh event: then frames and fps come from the saved object
        return {"vertices": mesh["vertices"], "faces": mesh["faces"], "uvs": mesh["uvs"],
                "texture": self.client.texture(self.job_id), "frames": info.get("frames"), "fps": info.get("fps"),
                "times": info.get("times"), "world_transform": info.get("world_transform")}

    def _frame(self, index: int) -> np.ndarray:
        data, shape = self.client.frame(self.job_id, index)
        return np.frombuffer(data, dtype="<f4").reshape(shape).astype(np.float32)


def drain_all(apply: Callable[[Session, tuple[Any, ...]], None], budget: int = 10_000) -> bool:
    """Hand queued messages to ``apply`` on the main thread; True while any session still has work."""
    for key, session in list(SESSIONS.items()):
        for _ in range(budget):
            try:
                message = session.messages.get_nowait()
            except queue.Empty:
                break
            apply(session, message)
            if message[0] == "end":
                session.finished = True
        if session.finished:
            SESSIONS.pop(key, None)
    return bool(SESSIONS)
