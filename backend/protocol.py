"""The vocabulary the Blender add-on and the backend share: routes, job states, events, presets, limits.

Stdlib only: Blender's own Python imports this file from the extension as well. The HTTP API:

    GET  /health                         version, device, models            (every route needs
    GET  /jobs                           all jobs, newest first              Authorization: Bearer <token>)
    POST /jobs                           create from local paths (JSON body: JobRequest fields)
    POST /jobs/upload                    create from uploaded files (multipart: request, cameras, views..., masks...)
    GET  /jobs/{id}                      status
    GET  /jobs/{id}/events               server-sent events; resume with Last-Event-ID
    POST /jobs/{id}/cancel               stop a queued or running job
    GET  /jobs/{id}/mesh                 mesh.npz (vertices, faces, uvs)
    GET  /jobs/{id}/texture              texture.png
    GET  /jobs/{id}/frames/{index}       float32 little-endian vertex positions, N x 3 (header X-Lim4d-Shape)
    GET  /jobs/{id}/files/{name}         manifest.json, animation.glb, preview.png, preview.mp4, views.png
    GET  /jobs/{id}/log                  the worker's log (text)
    DELETE /jobs/{id}                    remove a finished job and its files

The backend's first line on stdout is one JSON object: {"lim4d": "listening", "url": ..., "address": ...,
"token": ... (only when it made one), "pid": ..., "device": "cpu" or "cuda"}.

A monocular job is one video with `"monocular": true` and at most one camera (the one that shot it: the
result is placed where it saw the object); the other views are generated (stage "views"); "mask": its mask clip.
A multi-view job may carry "masks": a mask clip per view (white = object; null: matte that view from its footage);
in an upload, each entry names an uploaded "masks" part. "view_offsets": per view, its own frames (at its own rate)
before the clip's first (clips synced by sliding them along a timeline, as in Blender); its mask clip's likewise.

A view (or mask clip) may be an image sequence instead of a video: a folder of images (all of them, in natural
order), or a numbered image such as render/frame_0001.png, as Blender's clips name one (that image and the ones
numbered on from it, without gaps). Images have no frame rate: "sequence_fps" gives it (default 24). An upload
carries a sequence as a .zip of its images (`image_sequence` says which).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

API_VERSION = 1
LISTENING = "listening"
SHAPE_HEADER = "X-Lim4d-Shape"


class JobState:
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ALL = (QUEUED, RUNNING, DONE, FAILED, CANCELLED)
    TERMINAL = (DONE, FAILED, CANCELLED)


class Event:
    """Event types in a job's stream, in the order they can appear."""

    QUEUED = "queued"  # {}
    STARTED = "started"  # {}
    STAGE = "stage"  # {"stage": name, "fraction": 0..1, "eta_s": seconds or null}
    LOG = "log"  # {"message": text}
    MESH = "mesh"  # {"vertices", "faces", "frames", "fps", "times": [...], "world_transform": 4x4}: mesh, texture ready
    FRAME = "frame"  # {"frame": i, "position": input-frame position, "fraction", "eta_s"}: frame i ready
    TEXTURE = "texture"  # {}: texture.png repainted from the footage of every tracked frame; it replaces the first one
    DONE = "done"  # {"frames": n}
    FAILED = "failed"  # {"error": reason, "frames": n finished}
    CANCELLED = "cancelled"  # {"frames": n finished}
    TERMINAL = (DONE, FAILED, CANCELLED)


STAGES = ("decode", "views", "lrm_lim", "fit", "marching_cubes", "decimation", "uv", "texture", "tracking", "repaint",
          "gaussians", "outputs")

# quality preset -> reconstruction settings (faces, texture size, mesh grid, whether to write 4D Gaussians)
QUALITY_PRESETS: dict[str, dict[str, int | bool]] = {
    "preview": {"target_faces": 3000, "texture_size": 256, "grid": 64, "gaussians": False, "fit_steps": 10},
    "final": {"target_faces": 8000, "texture_size": 512, "grid": 96, "gaussians": True, "fit_steps": 30},
}
RESULT_FILES = ("manifest.json", "animation.glb", "preview.png", "preview.mp4", "texture.png", "mesh.npz", "views.png")


@dataclass(frozen=True)
class Limits:
    """What one job may ask of the backend; anything beyond is refused with a 4xx before work starts."""

    max_upload_bytes: int = 2 * 1024**3
    max_resolution: int = 4096  # pixels along either side of an input video
    max_frames: int = 2048  # input frames in the chosen range
    max_output_frames: int = 8192  # output frames after retiming
    max_duration_s: float = 3600.0
    max_views: int = 16
    max_texture: int = 4096
    max_faces: int = 200_000


# what a job request may hold (the server's JobRequest schema, which refuses anything else; the add-on sends only these)
JOB_REQUEST_FIELDS = ("clip", "views", "cameras", "cameras_file", "frame_start", "frame_end", "stride", "retime", "times",
                      "quality", "texture_size", "faces", "fit_steps", "monocular", "mask", "masks", "elevation_deg", "seed",
                      "sequence_fps", "view_offsets")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".exr")
SEQUENCE_FPS = 24.0  # the rate of an image sequence when nobody says


def image_sequence(path: Path) -> list[Path] | None:
    """The images a view path names, in order, or None when it names something else (a video file).

    A folder: its images in natural order (frame_9 before frame_10). A numbered image: it and the images numbered on
    from it up to the first gap, as Blender plays a clip's sequence (the number is the name's last run of digits,
    frame_0001.png or shot_0001_beauty.png, and the next name keeps its width: frame_0002.png). Any other image:
    itself. ValueError for a folder without images."""
    path = Path(path)
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()), key=_natural)
        if not files:
            raise ValueError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)})")
        _one_sequence(path, files)
        return files
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return None
    numbered = _numbered(path)
    if numbered is None:
        return [path]
    head, digits, tail = numbered
    files, number = [], int(digits)
    while (file := path.with_name(f"{head}{number:0{len(digits)}d}{tail}{path.suffix}")).is_file():
        files.append(file)
        number += 1
    return files or [path]


def sequence_gap(path: Path) -> str | None:
    """What a numbered image's sequence leaves out when it stops at a gap with images numbered after it (a sentence
    for the user: Blender would play those later images, the backend does not read them); None when nothing is left."""
    path = Path(path)
    numbered = _numbered(path) if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES else None
    if numbered is None:
        return None
    head, digits, tail = numbered
    files = image_sequence(path)
    last = int(digits) + len(files) - 1
    pattern = re.compile(re.escape(head) + rf"(\d{{{len(digits)},}})" + re.escape(tail + path.suffix))
    later = [m for f in path.parent.iterdir() if (m := pattern.fullmatch(f.name)) and int(m.group(1)) > last]
    if not later:
        return None
    missing = f"{head}{last + 1:0{len(digits)}d}{tail}{path.suffix}"
    return (f"{missing} is missing: the sequence from {path.name} stops at {files[-1].name} ({len(files)} images); "
            f"{len(later)} image(s) numbered after the gap are not read (fill the gap, or start from the first image "
            "after it)")


def _one_sequence(folder: Path, files: list[Path]) -> None:
    """A folder must hold one sequence: not images of several kinds (PNG frames beside EXR passes), nor several
    numbered runs (Image0001.exr beside Depth0001.exr, as a compositor's File Output writes them)."""
    runs: dict[str, list[Path]] = {}
    for file in files:
        runs.setdefault(re.sub(r"\d+", "#", file.stem) + file.suffix.lower(), []).append(file)
    several = [run for run in runs.values() if len(run) > 1]
    if len({f.suffix.lower() for f in files}) > 1 or len(several) > 1:
        kinds = ", ".join(f"{len(run)} x {name}" for name, run in sorted(runs.items(), key=lambda kv: -len(kv[1]))[:4])
        raise ValueError(f"{folder}: holds several image sequences ({kinds}{', ...' if len(runs) > 4 else ''}); "
                         f"name the first image of the one to read (e.g. {min(max(runs.values(), key=len)).name})")


def _numbered(path: Path) -> tuple[str, str, str] | None:
    """(head, digits, tail) of an image named with a number: its name's last run of digits."""
    numbered = re.fullmatch(r"(.*?)(\d+)(\D*)", path.stem)
    return None if numbered is None else numbered.groups()


def _natural(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]
