"""Operators and the plain functions behind them (tests call the functions; timers never fire in bpy-as-module).

    start_import(scene)      request from the panel's settings -> backend job -> Session following it
    drain()                  apply queued messages on the main thread (the timer and the modal operator call it)
    resume_imports()         after opening a .blend: finish imports whose frames are missing
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bpy
import numpy as np

from ..backend.client import BackendError, Client
from ..backend.protocol import IMAGE_SUFFIXES, JOB_REQUEST_FIELDS, JobState, image_sequence
from . import importer, preferences
from .backend_link import EXTENSION_ROOT, LINK, LocalSettings
from .session import SESSIONS, Session, drain_all

DRAIN_INTERVAL_S = 0.1
ENV_LOG: deque[str] = deque(maxlen=200)  # live log of "Create Backend Environment"


def blender_camera(obj: bpy.types.Object, width: int, height: int) -> dict[str, Any]:
    """A camera's plain data in the form the backend reads ({"blender": ...}), in world coordinates."""
    cam = obj.data
    return {"blender": {"matrix_world": [list(row) for row in obj.matrix_world], "lens": cam.lens,
                        "sensor_width": cam.sensor_width, "sensor_height": cam.sensor_height, "sensor_fit": cam.sensor_fit,
                        "shift_x": cam.shift_x, "shift_y": cam.shift_y, "width": int(width), "height": int(height)}}


def camera_elevation(obj: bpy.types.Object) -> float:
    """How far the camera looks down, in degrees (the backend's assumed height over the object), clamped."""
    forward = -np.asarray(obj.matrix_world, dtype=np.float64)[:3, 2]  # cameras look along their -Z
    forward /= max(np.linalg.norm(forward), 1e-12)
    return float(np.clip(np.degrees(np.arcsin(-forward[2])), -45.0, 60.0))


def gather_inputs(scene: bpy.types.Scene, space_clip: bpy.types.MovieClip | None = None
                  ) -> tuple[list[str], list[dict], int, list[int], int | None]:
    """(video paths, cameras, the scene frame where the job's first frame shows, each view's file frame shown there,
    how many frames Blender shows from there: None to the clip's end) from the panel's choices; ValueError says what
    is missing."""
    settings = scene.lim4d
    if settings.mode == "MULTI":
        pairs = [(b.camera, b.clip) for b in settings.bindings]
        if not pairs:
            raise ValueError("multi-view: bind each clip to the camera that filmed it (add a binding)")
        for index, (camera, clip) in enumerate(pairs):
            if camera is None or clip is None:
                raise ValueError(f"binding {index + 1}: choose both a camera and its clip")
        videos = [clip_file(clip) for _, clip in pairs]
        cameras = [blender_camera(camera, *clip.size) for camera, clip in pairs]
        return videos, cameras, *clip_starts([clip for _, clip in pairs]), None
    if scene.camera is None:
        raise ValueError("monocular: the scene needs an active camera (the result is placed in front of it)")
    if settings.source == "CLIP":
        clip = space_clip or scene.active_clip
        if clip is None:
            raise ValueError("no active movie clip: open one in the Movie Clip Editor, or choose File")
        return [clip_file(clip)], [blender_camera(scene.camera, *clip.size)], *clip_starts([clip]), None
    if settings.source == "STRIPS":
        strips = [s for s in _sequencer_strips(scene) if s.select and s.type in ("MOVIE", "IMAGE")]
        if len(strips) != 1:
            raise ValueError(f"select exactly one movie or image strip (selected: {len(strips)})")
        path, strip = strip_file(strips[0]), strips[0]
        # a strip trimmed at its start (soft and hard cuts) shows its content from that many frames on, at
        # frame_final_start, for frame_final_duration frames
        skipped = int(strip.frame_offset_start) + int(getattr(strip, "animation_offset_start", 0))
        return [path], [blender_camera(scene.camera, *_video_size(path, scene))], int(strip.frame_final_start), \
            [skipped], int(strip.frame_final_duration)
    if not settings.filepath:
        raise ValueError("choose a video file")
    path = bpy.path.abspath(settings.filepath)
    return [path], [blender_camera(scene.camera, *_video_size(path, scene))], scene.frame_start, [0], None


def clip_starts(clips: list[bpy.types.MovieClip]) -> tuple[int, list[int]]:
    """The scene frame where every clip has started (its Start Frame, and its file's first frame), and each clip's
    file frame shown there: Blender shows a clip's file frame (scene frame - Start Frame + Frame Offset), so clips slid
    along the timeline to sync them are paired as they play."""
    base = max(max(c.frame_start, c.frame_start - c.frame_offset) for c in clips)
    return base, [base - c.frame_start + c.frame_offset for c in clips]


def job_request(scene: bpy.types.Scene, space_clip: bpy.types.MovieClip | None = None) -> dict[str, Any]:
    """The job the panel describes (backend request fields, and base_frame: the scene frame of its first frame).
    A single clip's offset moves the frame range; a multi-view job's go as view_offsets, each in its own view's frames
    (views filmed at other rates count their own)."""
    settings = scene.lim4d
    videos, cameras, base, offsets, length = gather_inputs(scene, space_clip)
    common = offsets[0] if len(offsets) == 1 else 0
    end = min(settings.frame_end or length, length) if length is not None else settings.frame_end or None
    request = {"views": videos, "cameras": cameras, "frame_start": settings.frame_start + common,
               "frame_end": end + common if end else None, "stride": settings.stride,
               "retime": settings.retime, "quality": settings.quality, "texture_size": settings.texture_size or None,
               "base_frame": base + settings.frame_start,
               "sequence_fps": scene.render.fps / scene.render.fps_base}  # image sequences play at the scene's rate
    if len(offsets) > 1 and any(offsets):
        request["view_offsets"] = offsets
    masks = gather_masks(scene)
    if settings.mode != "MULTI":
        request |= {"monocular": True, "elevation_deg": camera_elevation(scene.camera)}
        if masks:
            request["mask"] = masks[0]
    elif masks:
        request["masks"] = masks
    return request


def gather_masks(scene: bpy.types.Scene) -> list[str | None] | None:
    """Each view's mask clip (None where it has none: the backend mattes that view), or None when no view has one.
    Multi-view: one per binding; monocular: the panel's mask clip."""
    settings = scene.lim4d
    if settings.mode != "MULTI":
        return [clip_file(settings.mask)] if settings.mask else None
    if not any(b.mask for b in settings.bindings):
        return None
    return [clip_file(b.mask) if b.mask else None for b in settings.bindings]


def clip_file(clip: bpy.types.MovieClip) -> str:
    """The file a clip plays: its movie, or the first image of its image sequence (the backend reads the images
    numbered on from it, as Blender does: ``protocol.image_sequence``)."""
    path = bpy.path.abspath(clip.filepath, library=clip.library)
    if not Path(path).is_file():
        raise ValueError(f"clip {clip.name!r}: file not found ({path})")
    if clip.source == "SEQUENCE":  # Blender counts a sequence's images from its Frame Offset on (once reloaded)
        check_sequence(clip.name, path, [clip.frame_duration, clip.frame_duration + clip.frame_offset])
    return path


def check_sequence(name: str, path: str, counts: Sequence[int]) -> list[Path]:
    """The images the backend reads for a sequence that starts at ``path``, when Blender plays as many (one of
    ``counts``); else ValueError with what to do."""
    if Path(path).suffix.lower() not in IMAGE_SUFFIXES:
        raise ValueError(f"{name!r}: a sequence of {Path(path).suffix} images; lim4d reads {', '.join(IMAGE_SUFFIXES)} "
                         "(save the sequence as PNG or EXR, or render it to a movie)")
    files = image_sequence(Path(path))
    if len(files) not in counts:
        raise ValueError(f"{name!r}: Blender plays {counts[0]} frame(s), but {len(files)} image(s) are numbered on from "
                         f"{Path(path).name} without a gap (the backend reads those); play exactly the images numbered "
                         "one after another from the first")
    return files


def strip_file(strip: bpy.types.Strip) -> str:
    """The file a sequencer strip plays: its movie, or the first image of its image sequence (whose images must be
    the ones numbered on from it; the job stops at the strip's end)."""
    if strip.type == "MOVIE":
        return bpy.path.abspath(strip.filepath)
    path = str(Path(bpy.path.abspath(strip.directory)) / strip.elements[0].filename)
    names = [element.filename for element in strip.elements]
    files = check_sequence(strip.name, path, range(len(names), sys.maxsize))  # more images after it are not played
    if [file.name for file in files[:len(names)]] != names:
        raise ValueError(f"{strip.name!r}: its images are not the ones numbered one after another from {names[0]} (the "
                         "backend reads those); make a strip of images numbered without a gap")
    return path


def _sequencer_strips(scene: bpy.types.Scene) -> list:
    editor = scene.sequence_editor
    if editor is None:
        return []
    return list(editor.strips_all if hasattr(editor, "strips_all") else editor.sequences_all)  # renamed in 5.0


def _video_size(path: str, scene: bpy.types.Scene) -> tuple[int, int]:
    clip = bpy.data.movieclips.load(path, check_existing=True)
    return tuple(clip.size) if clip.size[0] else (scene.render.resolution_x, scene.render.resolution_y)


def connect(context: bpy.types.Context) -> Client:
    prefs = preferences.get(context)
    if prefs is not None and prefs.backend_mode == "REMOTE":
        return LINK.connect_remote(prefs.remote_url, prefs.remote_token)
    python = prefs.python_path if prefs else ""
    checkpoints = Path(bpy.path.abspath(prefs.checkpoints)) if prefs and prefs.checkpoints else EXTENSION_ROOT / "backend" / "checkpoints"
    device = prefs.device.lower() if prefs else "auto"
    return LINK.connect_local(LocalSettings(bpy.path.abspath(python) if python else "", preferences.cache_folder(), checkpoints,
                                            device))


def start_import(context: bpy.types.Context, request: dict[str, Any] | None = None, key: str | None = None) -> Session:
    """Send the job (paths on this machine; an upload to a remote backend) and start following it."""
    scene = context.scene
    settings = scene.lim4d
    if request is None:
        request = job_request(scene, getattr(getattr(context, "space_data", None), "clip", None))
    prefs = preferences.get(context)
    client = connect(context)
    payload = {k: v for k, v in request.items() if k in JOB_REQUEST_FIELDS}  # base_frame stays in Blender
    if prefs is not None and prefs.backend_mode == "REMOTE":
        files = [Path(v) for v in payload.pop("views")]
        masks = payload.pop("masks", None) or ([payload.pop("mask")] if payload.get("mask") else None)
        job = client.upload(payload | {"cameras": None}, payload.pop("cameras"), files,
                            [m and Path(m) for m in masks] if masks else None)
    else:
        job = client.create(payload)
    key = key or uuid.uuid4().hex[:12]
    settings.last_request = json.dumps(request)
    settings.job_id, settings.import_key = job["id"], key
    settings.state, settings.stage, settings.fraction, settings.error = JobState.QUEUED, "", 0.0, ""
    settings.frames_imported, settings.eta_s = 0, -1
    obj = importer.find_object(key)
    session = Session(key, client, job["id"], importer.imported_frames(obj) if obj else None)
    session.scene_name = scene.name
    session.base_frame = int(request.get("base_frame", scene.frame_start))
    session.start()
    ensure_timer()
    return session


def apply_message(session: Session, message: tuple[Any, ...]) -> None:
    scene = bpy.data.scenes.get(getattr(session, "scene_name", "")) or bpy.context.scene
    settings = scene.lim4d
    kind = message[0]
    if kind == "progress":
        info = message[1]
        settings.state = JobState.RUNNING
        settings.stage = info.get("stage") or settings.stage
        settings.fraction = float(info.get("fraction") or settings.fraction)
        settings.eta_s = -1 if info.get("eta_s") is None else float(info["eta_s"])
    elif kind == "mesh":
        data = message[1]
        base = getattr(session, "base_frame", scene.frame_start)
        obj = importer.build_object(session.key, session.job_id, data, scene, base)
        frames = data.get("frames") or obj.get(importer.FRAMES_PROP) or 0
        obj[importer.FRAMES_PROP] = frames
        settings.frames_expected = frames
        importer.follow_clip_timing(scene, obj[importer.BASE_PROP], frames, data.get("fps"))
        settings.frames_imported = len(importer.imported_frames(obj))
    elif kind == "frame":
        _, index, _position, vertices = message
        obj = importer.find_object(session.key)
        if obj is not None:
            importer.add_frame(obj, index, vertices)
            settings.frames_imported = len(importer.imported_frames(obj))
    elif kind == "texture":
        obj = importer.find_object(session.key)
        if obj is not None:
            importer.replace_texture(obj, message[1])
    elif kind == "end":
        _, state, error = message
        settings.state, settings.error = state, error or ""
        if state == JobState.DONE:
            settings.fraction, settings.eta_s = 1.0, 0
            obj = importer.find_object(session.key)
            if obj is not None:  # whatever texture it holds is the job's last
                obj[importer.TEXTURE_PROP] = 1


def drain() -> bool:
    return drain_all(apply_message)


def _timer() -> float | None:
    return DRAIN_INTERVAL_S if drain() else None


def ensure_timer() -> None:
    if not bpy.app.timers.is_registered(_timer):
        bpy.app.timers.register(_timer, first_interval=DRAIN_INTERVAL_S, persistent=True)


def resume_imports(context: bpy.types.Context | None = None) -> list[Session]:
    """Imports saved unfinished (Blender closed or crashed mid-import: frames missing, or every frame in but not yet the
    repainted texture): follow their jobs again, skipping frames we have."""
    context = context or bpy.context
    sessions = []
    for obj in bpy.data.objects:
        key, job_id = obj.get(importer.KEY_PROP), obj.get(importer.JOB_PROP)
        if not key or not job_id or key in SESSIONS or importer.import_complete(obj):
            continue
        try:
            client = connect(context)
        except BackendError:
            return sessions
        session = Session(key, client, job_id, importer.imported_frames(obj))
        session.scene_name = next((s.name for s in bpy.data.scenes if obj.name in s.objects), context.scene.name)
        session.base_frame = obj.get(importer.BASE_PROP, 1)
        sessions.append(session.start())
    if sessions:
        ensure_timer()
    return sessions


def retry(context: bpy.types.Context) -> Session:
    """Run the last request again (a restarted backend gives the same mesh, so the imported frames are kept)."""
    settings = context.scene.lim4d
    if not settings.last_request:
        raise ValueError("nothing to retry")
    return start_import(context, json.loads(settings.last_request), settings.import_key or None)


def cancel(context: bpy.types.Context) -> None:
    """Ask the backend to stop the current job, off the main thread (it may take up to 2 s)."""
    settings = context.scene.lim4d
    client, job_id = LINK.client, settings.job_id
    if client is None or not job_id:
        return
    settings.state = "cancelling"
    threading.Thread(target=lambda: _quietly(client.cancel, job_id), daemon=True).start()


def _quietly(call: Any, *args: Any) -> None:
    try:
        call(*args)
    except BackendError:
        pass


def run_reporting(operator: bpy.types.Operator, context: bpy.types.Context, action: Any) -> set[str]:
    """Run ``action(context)``; a bad input or an unreachable backend becomes the panel's error and a report."""
    try:
        action(context)
    except (ValueError, BackendError) as error:
        context.scene.lim4d.error = str(error)
        operator.report({"ERROR"}, str(error))
        return {"CANCELLED"}
    return {"FINISHED"}


class LIM4D_OT_reconstruct(bpy.types.Operator):  # noqa: N801
    """Reconstruct the chosen clip(s) into a tracked, textured, animated mesh"""

    bl_idname = "lim4d.reconstruct"
    bl_label = "Reconstruct 4D"

    def execute(self, context: bpy.types.Context) -> set[str]:
        return run_reporting(self, context, start_import)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if self.execute(context) != {"FINISHED"}:
            return {"CANCELLED"}
        self._timer = context.window_manager.event_timer_add(DRAIN_INTERVAL_S, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if event.type == "ESC":
            cancel(context)
        if event.type == "TIMER":
            busy = drain()
            for area in context.screen.areas if context.screen else []:
                area.tag_redraw()
            if not busy:
                context.window_manager.event_timer_remove(self._timer)
                return {"FINISHED"}
        return {"PASS_THROUGH"}


class LIM4D_OT_cancel(bpy.types.Operator):  # noqa: N801
    """Stop the running reconstruction (frames already imported stay)"""

    bl_idname = "lim4d.cancel"
    bl_label = "Cancel"

    def execute(self, context: bpy.types.Context) -> set[str]:
        cancel(context)
        return {"FINISHED"}


class LIM4D_OT_retry(bpy.types.Operator):  # noqa: N801
    """Run the last reconstruction again, keeping the frames already imported"""

    bl_idname = "lim4d.retry"
    bl_label = "Retry"

    def execute(self, context: bpy.types.Context) -> set[str]:
        return run_reporting(self, context, retry)


class LIM4D_OT_binding_add(bpy.types.Operator):  # noqa: N801
    """Bind a clip to the camera that filmed it (the active camera and clip, when there are)"""

    bl_idname = "lim4d.binding_add"
    bl_label = "Add Camera Binding"

    def execute(self, context: bpy.types.Context) -> set[str]:
        binding = context.scene.lim4d.bindings.add()
        active = context.active_object
        binding.camera = active if active and active.type == "CAMERA" else context.scene.camera
        binding.clip = context.scene.active_clip
        return {"FINISHED"}


class LIM4D_OT_binding_remove(bpy.types.Operator):  # noqa: N801
    bl_idname = "lim4d.binding_remove"
    bl_label = "Remove Camera Binding"

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.lim4d
        if settings.bindings:
            settings.bindings.remove(settings.binding_index)
            settings.binding_index = max(0, settings.binding_index - 1)
        return {"FINISHED"}


class LIM4D_OT_start_backend(bpy.types.Operator):  # noqa: N801
    """Start (or reconnect to) the backend and check its health"""

    bl_idname = "lim4d.start_backend"
    bl_label = "Connect Backend"

    def execute(self, context: bpy.types.Context) -> set[str]:
        result = run_reporting(self, context, connect)
        if result == {"FINISHED"}:
            self.report({"INFO"}, LINK.status_line())
        return result


class LIM4D_OT_show_log(bpy.types.Operator):  # noqa: N801
    """Open the backend's log in a text editor block"""

    bl_idname = "lim4d.show_log"
    bl_label = "Backend Log"

    def execute(self, context: bpy.types.Context) -> set[str]:
        text = bpy.data.texts.get("lim4d backend log") or bpy.data.texts.new("lim4d backend log")
        parts = []
        if LINK.log_path and LINK.log_path.is_file():
            parts.append(LINK.log_path.read_text(errors="replace")[-20000:])
        job_id = context.scene.lim4d.job_id
        if LINK.client is not None and job_id:
            parts.append(_quiet_log(LINK.client, job_id))
        parts.append("\n".join(ENV_LOG))
        text.from_string("\n".join(p for p in parts if p) or "(no log yet)")
        self.report({"INFO"}, "see the text block 'lim4d backend log'")
        return {"FINISHED"}


def _quiet_log(client: Client, job_id: str) -> str:
    try:
        return client.log(job_id)
    except BackendError as error:
        return f"(job log unavailable: {error})"


def create_environment(target: Path, online: bool) -> subprocess.Popen:
    """Make a venv at ``target`` and install the backend's pinned requirements, streaming pip's output to ENV_LOG."""
    if not online:
        raise ValueError("Blender is set to work offline: allow Online Access (Preferences > System) to install "
                         "the backend's packages, or point the preferences at an existing backend Python")
    python = target / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    script = (f'"{sys.executable}" -m venv "{target}" && "{python}" -m pip install torch==2.13.0 '
              f'&& "{python}" -m pip install -r "{EXTENSION_ROOT / "requirements.txt"}"')
    process = subprocess.Popen(script, shell=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def pump() -> None:
        for line in process.stdout:
            ENV_LOG.append(line.rstrip())
        ENV_LOG.append(f"finished with exit code {process.wait()}")

    threading.Thread(target=pump, daemon=True).start()
    return process


class LIM4D_OT_create_environment(bpy.types.Operator):  # noqa: N801
    """Create a Python environment for the backend and install its pinned packages (needs Online Access)"""

    bl_idname = "lim4d.create_environment"
    bl_label = "Create Backend Environment"

    def execute(self, context: bpy.types.Context) -> set[str]:
        target = preferences.cache_folder() / "venv"
        try:
            create_environment(target, bool(getattr(bpy.app, "online_access", True)))
        except ValueError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        prefs = preferences.get(context)
        if prefs is not None:
            prefs.python_path = str(target / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python"))
        self.report({"INFO"}, "installing; follow it with Backend Log")
        return {"FINISHED"}


def scrub_error(obj: bpy.types.Object, frames: dict[int, np.ndarray]) -> float:
    """Largest distance between the evaluated mesh at each scene frame and the vertices streamed for it."""
    base = obj.get(importer.BASE_PROP, 1)
    return max(float(np.abs(importer.evaluated_positions(obj, base + i) - v).max()) for i, v in frames.items())


CLASSES = (LIM4D_OT_reconstruct, LIM4D_OT_cancel, LIM4D_OT_retry, LIM4D_OT_binding_add, LIM4D_OT_binding_remove,
           LIM4D_OT_start_backend, LIM4D_OT_show_log, LIM4D_OT_create_environment)
