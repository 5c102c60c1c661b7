"""The HTTP API (FastAPI): routes over the job store and queue; see backend/protocol.py for the list.

Every route, the OpenAPI schema included, needs ``Authorization: Bearer <token>``; the check is an
ASGI middleware in front of everything, so no route can forget it.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import FastAPI, File, Form, Header, HTTPException, UploadFile
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from backend import __version__
from backend.protocol import API_VERSION, QUALITY_PRESETS, RESULT_FILES, SHAPE_HEADER, Event, JobState, Limits
from backend.server.events import EventLog
from backend.server.jobs import JobRunner
from backend.server.uploads import UploadError, unpack_sequence
from backend.server.validation import RequestError, check_request

UPLOAD_SUFFIXES = {".mp4", ".mov", ".webm", ".mkv", ".avi", ".gif", ".m4v", ".zip"}  # .zip: an image sequence
KEEPALIVE_S = 10.0
POLL_S = 0.03


class JobRequest(BaseModel):
    """A reconstruction job. Paths are on the backend's machine (use /jobs/upload from elsewhere)."""

    model_config = ConfigDict(extra="forbid")
    clip: str | None = Field(None, description="a clip folder (lim4d-clip format)")
    views: list[str] | None = Field(None, description="one video per camera", max_length=64)
    cameras: list[dict[str, Any]] | None = Field(None, description="per view: clip-folder camera or {'blender': {...}}",
                                                 max_length=64)
    cameras_file: str | None = Field(None, description="or: a cameras.json for the views")
    frame_start: int = Field(0, ge=0, le=10**7)
    frame_end: int | None = Field(None, ge=1, le=10**7, description="exclusive")
    stride: int = Field(4, ge=1, le=64, description="a keyframe every N frames")
    retime: float = Field(1.0, ge=1.0, le=16.0, description="output frames per input frame (in-betweens from LIM)")
    times: list[float] | None = Field(None, max_length=100_000, description="or exactly these frame positions")
    quality: Literal["preview", "final"] = "final"
    texture_size: int | None = Field(None, ge=16, le=16384)
    faces: int | None = Field(None, ge=100, le=10**7)
    fit_steps: int | None = Field(None, ge=0, le=1000, description="steps fitting each keyframe to the footage (0: off)")
    monocular: bool = Field(False, description="one video from one camera: the other views are generated")
    mask: str | None = Field(None, description="monocular: a mask clip (white = object) overriding the matte")
    masks: list[str | None] | None = Field(None, max_length=64, description="multi-view: a mask clip per view (white = "
                                           "object; null: matte that view), overriding the matte and a clip folder's")
    elevation_deg: float = Field(10.0, ge=-45.0, le=60.0, description="monocular: the camera's height over the object")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="monocular: seed of the generated views")
    view_offsets: list[Annotated[int, Field(ge=0, le=10**7)]] | None = Field(
        None, max_length=64, description="multi-view: per view, its frames before the clip's first (views synced by "
        "sliding them along a timeline)")
    sequence_fps: float | None = Field(None, ge=1.0, le=240.0, description="the frame rate of image-sequence views "
                                       "(default 24; video files keep their own)")


class JobStatus(BaseModel):
    id: str
    state: Literal["queued", "running", "done", "failed", "cancelled"]
    request: dict[str, Any]
    created: float
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    frames_done: int = 0


@dataclass
class ServerConfig:
    jobs: Path
    checkpoints: Path
    token: str
    limits: Limits = field(default_factory=Limits)
    allowed_roots: list[Path] = field(default_factory=list)
    device: str = "cpu"


class BearerToken:
    """ASGI middleware: 401 for any HTTP request without the right bearer token."""

    def __init__(self, app: Any, token: str) -> None:
        self.app, self.expected = app, f"Bearer {token}".encode()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not secrets.compare_digest(given, self.expected):
                response = JSONResponse({"detail": "missing or wrong token (Authorization: Bearer <token>)"}, 401,
                                        headers={"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def models_summary(checkpoints: Path) -> dict[str, Any]:
    """What each checkpoint folder holds, from its config.json alone (the server process never loads torch)."""
    summary = {}
    for folder in sorted(p for p in checkpoints.iterdir() if (p / "config.json").is_file()) if checkpoints.is_dir() else []:
        try:
            meta = json.loads((folder / "config.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        summary[folder.name] = {"kind": meta.get("kind"), "step": meta.get("step"), "note": meta.get("note"),
                                "canonical": bool(meta.get("config", {}).get("canonical"))}
    return summary


def create_app(config: ServerConfig, runner: JobRunner) -> FastAPI:
    store = runner.store
    app = FastAPI(title="lim4d backend", version=__version__,
                  description="Video clips in, tracked UV-textured 4D meshes out. Every route needs a bearer token.")

    def job_or_404(job_id: str) -> tuple[dict[str, Any], Path]:
        record = store.get(job_id)
        if record is None:
            raise HTTPException(404, f"no job {job_id!r}")
        return record, store.root / job_id

    def submit(request: dict[str, Any], folder: tuple[str, Path] | None = None) -> dict[str, Any]:
        # an upload's own folder is always allowed, whatever roots are configured
        roots = [*config.allowed_roots, folder[1].resolve()] if config.allowed_roots and folder else config.allowed_roots
        try:
            checked = check_request(request, config.limits, roots)
        except RequestError as error:
            if folder is not None:
                shutil.rmtree(folder[1], ignore_errors=True)
            raise HTTPException(error.status, error.message) from None
        job_id, _ = folder or store.new_folder()
        record = store.create(job_id, checked)
        runner.submit(job_id)
        return {**record, "frames_done": 0}

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"name": "lim4d", "version": __version__, "api": API_VERSION, "device": config.device,
                "models": models_summary(config.checkpoints), "running": runner.running, "queued": runner.queued(),
                "quality_presets": QUALITY_PRESETS}

    @app.get("/jobs", response_model=list[JobStatus])
    def list_jobs() -> list[dict[str, Any]]:
        return store.all()

    @app.post("/jobs", status_code=201, response_model=JobStatus)
    def create_job(request: JobRequest) -> dict[str, Any]:
        return submit(request.model_dump())

    @app.post("/jobs/upload", status_code=201, response_model=JobStatus)
    def upload_job(request: Annotated[str, Form(description="JobRequest fields as JSON, without paths")],
                   cameras: Annotated[UploadFile, File(description="cameras.json for the views, in order")],
                   views: Annotated[list[UploadFile], File(description="one video per camera (or a .zip of "
                                                                       "an image sequence)")],
                   masks: Annotated[list[UploadFile] | None, File(description="mask clips, named in request's masks")] = None,
                   content_length: Annotated[int | None, Header()] = None) -> dict[str, Any]:
        if content_length is not None and content_length > config.limits.max_upload_bytes:
            raise HTTPException(413, f"upload of {content_length} bytes exceeds the limit of {config.limits.max_upload_bytes}")
        try:
            fields = JobRequest.model_validate_json(request).model_dump()
        except ValueError as error:
            raise HTTPException(422, f"request: {error}") from None
        if fields.get("clip") or fields.get("views") or fields.get("cameras_file") or fields.get("mask"):
            raise HTTPException(400, "an upload carries its files; leave clip, views, cameras_file and mask out of request "
                                     "(masks: the names of the uploaded mask clips, one entry per view, null to matte it)")
        if len(views) > config.limits.max_views:
            raise HTTPException(413, f"{len(views)} views exceed the limit of {config.limits.max_views}")
        by_name = {m.filename or "": m for m in masks or []}
        wanted = [m for m in fields.get("masks") or [] if m is not None]
        if sorted(wanted) != sorted(by_name):
            raise HTTPException(400, f"request's masks name {sorted(wanted)}, the upload carries mask clips "
                                     f"{sorted(by_name)}: name each uploaded mask clip once (null for a view to matte)")
        job_id, folder = store.new_folder()
        inputs = folder / "inputs"
        inputs.mkdir()
        total = 0
        parts = [("cameras.json", cameras)] + [(f"view_{i:02d}", v) for i, v in enumerate(views)]
        parts += [(f"mask_{i:02d}", by_name[m]) for i, m in enumerate(fields.get("masks") or []) if m is not None]
        paths = {}
        for name, upload in parts:
            suffix = Path(upload.filename or "").suffix.lower()
            file_name = name if name.endswith(".json") else f"{name}{suffix if suffix in UPLOAD_SUFFIXES else '.bin'}"
            with open(inputs / file_name, "wb") as handle:
                while chunk := upload.file.read(1 << 20):
                    total += len(chunk)
                    if total > config.limits.max_upload_bytes:
                        shutil.rmtree(folder, ignore_errors=True)
                        raise HTTPException(413, f"upload exceeds the limit of {config.limits.max_upload_bytes} bytes")
                    handle.write(chunk)
            paths[name] = str(inputs / file_name)
            if file_name.endswith(".zip"):  # an image sequence: its images count, not the zip that carried them
                packed = (inputs / file_name).stat().st_size
                try:
                    written = unpack_sequence(inputs / file_name, inputs / name, config.limits.max_upload_bytes - total + packed)
                except UploadError as error:
                    shutil.rmtree(folder, ignore_errors=True)
                    raise HTTPException(error.status, error.message) from None
                except BaseException:  # a full disk: no half-unpacked job left behind
                    shutil.rmtree(folder, ignore_errors=True)
                    raise
                total += written - packed
                paths[name] = str(inputs / name)
        fields.update(views=[paths[f"view_{i:02d}"] for i in range(len(views))], cameras_file=paths["cameras.json"],
                      cameras=None)
        if fields.get("masks"):
            fields["masks"] = [None if m is None else paths[f"mask_{i:02d}"] for i, m in enumerate(fields["masks"])]
            if fields.get("monocular"):  # its one mask clip: a local request's mask
                if len(fields["masks"]) != 1:
                    shutil.rmtree(folder, ignore_errors=True)
                    raise HTTPException(400, f"a monocular upload takes one mask clip, got {len(fields['masks'])} entries")
                fields["mask"], fields["masks"] = fields["masks"][0], None
        return submit(fields, (job_id, folder))

    @app.get("/jobs/{job_id}", response_model=JobStatus)
    def job_status(job_id: str) -> dict[str, Any]:
        return job_or_404(job_id)[0]

    @app.post("/jobs/{job_id}/cancel", response_model=JobStatus)
    def cancel_job(job_id: str) -> dict[str, Any]:
        record, _ = job_or_404(job_id)
        if record["state"] in JobState.TERMINAL:
            raise HTTPException(409, f"job {job_id} has already ended ({record['state']})")
        runner.cancel(job_id)
        return store.get(job_id)

    @app.delete("/jobs/{job_id}", status_code=204)
    def delete_job(job_id: str) -> Response:
        record, _ = job_or_404(job_id)
        if record["state"] not in JobState.TERMINAL:
            raise HTTPException(409, f"job {job_id} is {record['state']}; cancel it first")
        store.delete(job_id)
        return Response(status_code=204)

    @app.get("/jobs/{job_id}/events", response_class=StreamingResponse,
             responses={200: {"content": {"text/event-stream": {}}, "description": "server-sent events"}})
    async def job_events(job_id: str, last_event_id: Annotated[str | None, Header()] = None,
                         after: int | None = None) -> StreamingResponse:
        _, folder = job_or_404(job_id)
        try:
            start = int(last_event_id) if last_event_id is not None else (-1 if after is None else after)
        except ValueError:
            raise HTTPException(400, "Last-Event-ID must be an event id (an integer)") from None
        return StreamingResponse(_stream(EventLog(folder), start), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def _stream(log: EventLog, after: int):
        offset, quiet = 0, 0.0
        while True:
            events, offset = log.read(after, offset)
            for event in events:
                after = event["id"]
                yield f"id: {event['id']}\nevent: {event['type']}\ndata: {json.dumps(event)}\n\n"
                if event["type"] in Event.TERMINAL:
                    return
            if events:
                quiet = 0.0
                continue
            await asyncio.sleep(POLL_S)
            quiet += POLL_S
            if quiet >= KEEPALIVE_S:
                quiet = 0.0
                yield ": keepalive\n\n"

    @app.get("/jobs/{job_id}/mesh", response_class=FileResponse,
             responses={200: {"content": {"application/octet-stream": {}}, "description": "mesh.npz"}})
    def job_mesh(job_id: str) -> FileResponse:
        return _result_file(job_id, "mesh.npz")

    @app.get("/jobs/{job_id}/texture", response_class=Response,
             responses={200: {"content": {"image/png": {}}, "description": "texture.png"}})
    def job_texture(job_id: str) -> Response:
        # read whole, not streamed: the repaint replaces the file while a client may be fetching the first one
        # (a FileResponse takes the size before it opens the file)
        _, folder = job_or_404(job_id)
        try:
            return Response((folder / "result" / "texture.png").read_bytes(), media_type="image/png")
        except FileNotFoundError:
            raise HTTPException(404, f"texture.png of job {job_id} is not ready") from None

    @app.get("/jobs/{job_id}/frames/{index}", response_class=Response,
             responses={200: {"content": {"application/octet-stream": {}}, "description": "float32 N x 3, little-endian"}})
    def job_frame(job_id: str, index: int) -> Response:
        _, folder = job_or_404(job_id)
        path = folder / "result" / "frames" / f"frame_{index:04d}.npy"
        if index < 0 or not path.is_file():
            raise HTTPException(404, f"frame {index} of job {job_id} is not ready")
        vertices = np.load(path).astype("<f4", copy=False)
        return Response(vertices.tobytes(), media_type="application/octet-stream",
                        headers={SHAPE_HEADER: ",".join(map(str, vertices.shape))})

    @app.get("/jobs/{job_id}/files/{name}", response_class=FileResponse)
    def job_file(job_id: str, name: str) -> FileResponse:
        if name not in RESULT_FILES:
            raise HTTPException(404, f"no result file {name!r}; there are {', '.join(RESULT_FILES)}")
        return _result_file(job_id, name)

    @app.get("/jobs/{job_id}/log", response_class=PlainTextResponse)
    def job_log(job_id: str) -> PlainTextResponse:
        _, folder = job_or_404(job_id)
        path = folder / "worker.log"
        return PlainTextResponse(path.read_text(errors="replace") if path.is_file() else "")

    def _result_file(job_id: str, name: str) -> FileResponse:
        _, folder = job_or_404(job_id)
        path = folder / "result" / name
        if not path.is_file():
            raise HTTPException(404, f"{name} of job {job_id} is not ready")
        return FileResponse(path)

    app.add_middleware(BearerToken, token=config.token)
    return app

