"""Drive the real, installed lim4d extension inside Blender on a multi-view clip folder (tests and the demo).

Run in a Blender Python process (bpy as a module, or `blender -b --python`), never imported by the backend:

    python -m backend.drive_extension '{"archive": ZIP, "python": BACKEND_PYTHON, "clip": DIR, "out": DIR, ...}'

It installs the built zip into the user extension repository (BLENDER_USER_RESOURCES decides where),
enables it, binds a Blender camera to each of the clip's views, presses Reconstruct, pumps the drain
function until the job ends (timers do not fire in bpy-as-module), and writes a JSON report of what it
found: shape keys, scrubbing error against the streamed frames, UVs, texture, exports re-imported. With
"kill_backend" it also kills the backend mid-job and retries; with "reopen" it saves mid-import, reopens
the .blend and lets the add-on finish the import.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix

PACKAGE = "bl_ext.user_default.lim4d"


def module(name: str):
    return sys.modules[f"{PACKAGE}.addon.{name}"]


def install(archive: str, python: str, checkpoints: str | None) -> None:
    bpy.ops.extensions.package_install_files(repo="user_default", filepath=archive, enable_on_install=True)
    if PACKAGE not in bpy.context.preferences.addons:
        raise RuntimeError("the extension did not enable")
    prefs = bpy.context.preferences.addons[PACKAGE].preferences
    prefs.backend_mode, prefs.python_path = "LOCAL", python
    if checkpoints:
        prefs.checkpoints = checkpoints


def bind_clip(clip_folder: Path) -> None:
    """A Blender camera per view, placed as the clip's cameras.json says, each bound to its movie clip."""
    from backend.io.cameras import Camera

    scene = bpy.context.scene
    settings = scene.lim4d
    settings.mode = "MULTI"
    settings.bindings.clear()
    for index, view in enumerate(json.loads((clip_folder / "cameras.json").read_text())["views"]):
        data = Camera.from_dict(view["camera"]).to_blender()
        camera = bpy.data.cameras.new(f"view_{index:02d}")
        camera.lens, camera.sensor_width, camera.sensor_fit = data["lens"], data["sensor_width"], data["sensor_fit"]
        camera.shift_x, camera.shift_y = data["shift_x"], data["shift_y"]
        obj = bpy.data.objects.new(f"view_{index:02d}", camera)
        obj.matrix_world = Matrix(np.asarray(data["matrix_world"]).tolist())  # rows; a plain list would be columns
        scene.collection.objects.link(obj)
        binding = settings.bindings.add()
        binding.camera = obj
        binding.clip = bpy.data.movieclips.load(str(clip_folder / view["video"]))
    scene.render.resolution_x, scene.render.resolution_y = data["width"], data["height"]
    scene.camera = scene.collection.objects[0]


def write_mask(clip_folder: Path, view: int, out: Path) -> Path:
    """View ``view``'s true matte (the clip's ground-truth alpha) as a mask clip in ``out``."""
    from backend.io.video import write_mask_clip

    path = out / f"mask_{view:02d}.mp4"
    write_mask_clip(path, np.load(clip_folder / "gt" / f"view_{view:02d}.npz")["alpha"], 24)
    return path


def bind_mask(clip_folder: Path, view: int, out: Path) -> None:
    """View ``view``'s true matte as a mask clip, bound as that view's mask."""
    bpy.context.scene.lim4d.bindings[view].mask = bpy.data.movieclips.load(str(write_mask(clip_folder, view, out)))


def slide_view(view: int, video: Path, early: int) -> None:
    """Bind view ``view`` to ``video``, the same camera started ``early`` frames before the others, slid back along the
    timeline by as many (its Start Frame), as one syncs such clips in Blender."""
    binding = bpy.context.scene.lim4d.bindings[view]
    clip = bpy.data.movieclips.load(str(video))
    clip.frame_start = binding.clip.frame_start - early
    binding.clip = clip


def pump(until: float = 600.0, stop_when=None) -> None:
    """Call the add-on's drain as its timer would, until the import ends (or ``stop_when()``)."""
    operators = module("operators")
    deadline = time.monotonic() + until
    while time.monotonic() < deadline:
        busy = operators.drain()
        if stop_when is not None and stop_when():
            return
        if not busy:
            return
        time.sleep(0.05)
    raise TimeoutError("the import did not finish in time")


def imported(obj) -> int:
    return len(module("importer").imported_frames(obj)) if obj else 0


def current_object():
    return module("importer").find_object(bpy.context.scene.lim4d.import_key)


def texture_difference(image, png: bytes) -> float:
    """Largest per-channel difference between the imported image and the job's texture.png as it is now (repainted
    once every frame is tracked: an add-on that kept the first texture differs)."""
    from PIL import Image

    final = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float32) / 255
    width, height = image.size
    pixels = np.empty(width * height * 4, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    return float(np.abs(pixels.reshape(height, width, 4)[::-1, :, :3] - final).max())


def check_import(report: dict, out: Path, formats: list[str]) -> None:
    settings = bpy.context.scene.lim4d
    obj = current_object()
    link = module("backend_link").LINK
    frames = {}
    for index in range(obj["lim4d_frames"]):
        data, shape = link.client.frame(settings.job_id, index)
        frames[index] = np.frombuffer(data, dtype="<f4").reshape(shape)
    started = time.perf_counter()
    report["scrub_error"] = module("operators").scrub_error(obj, frames)
    report["frame_set_ms"] = 1000 * (time.perf_counter() - started) / len(frames)
    report["shape_keys"] = len(obj.data.shape_keys.key_blocks)
    report["frames"] = len(frames)
    report["uv_layers"] = len(obj.data.uv_layers)
    image = obj.active_material.node_tree.nodes["Image Texture"].image
    report["texture"] = {"packed": image.packed_file is not None, "size": list(image.size), "name": image.name,
                         "key": settings.import_key, "final": obj.get("lim4d_texture_final"),
                         "difference_to_final": texture_difference(image, link.client.texture(settings.job_id))}
    report["scene_range"] = [bpy.context.scene.frame_start, bpy.context.scene.frame_end]
    report["exports"] = {}
    exporting = module("exporting")
    scene = bpy.context.scene
    sample = sorted({scene.frame_start, (scene.frame_start + scene.frame_end) // 2, scene.frame_end})
    for fmt in formats:
        try:
            path = exporting.export(obj, fmt, out / f"result{exporting.FORMATS[fmt]}")
            report["exports"][fmt] = {"error": exporting.validate(obj, fmt, path, sample), "bytes": path.stat().st_size}
        except Exception as error:  # report, do not stop: each format is its own check
            report["exports"][fmt] = {"failure": f"{type(error).__name__}: {error}"}


def render_still(camera, frame: int, path: Path, size: int) -> np.ndarray:
    scene = bpy.context.scene
    scene.camera = camera
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.frame_set(frame)
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    image = bpy.data.images.load(str(path))
    pixels = np.array(image.pixels[:], dtype=np.float32).reshape(size, size, 4)[::-1, :, :3]
    bpy.data.images.remove(image)
    return (pixels.clip(0, 1) * 255).round().astype(np.uint8)


def orbit_camera(name: str, target: np.ndarray, radius: float, azimuth: float, height: float):
    from mathutils import Vector

    camera = bpy.data.objects.new(name, bpy.data.cameras.new(name))
    bpy.context.scene.collection.objects.link(camera)
    camera.location = Vector(np.asarray(target) + np.array([radius * np.cos(azimuth), radius * np.sin(azimuth), height]))
    camera.rotation_euler = (Vector(target) - camera.location).to_track_quat("-Z", "Y").to_euler()
    camera.data.lens = 50
    return camera


def render_demo(obj, frames_in: np.ndarray, input_camera, out: Path, demo: dict, name: str = "demo",
                turntable: bool = True) -> None:
    """Blender renders of the animated, textured mesh: a contact sheet (input | from the input camera | from
    the side) at several frames, and a turntable while the animation plays (Workbench, texture colours)."""
    from PIL import Image

    from backend.io.video import write_mp4

    scene = bpy.context.scene
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.display.shading.light = "FLAT"  # the texture holds the footage's own shading: studio light would shade it twice
    scene.display.shading.color_type = "TEXTURE"
    scene.render.film_transparent = False
    scene.view_settings.view_transform = "Standard"  # white stays white (AgX would grey the background)
    world = scene.world or bpy.data.worlds.new("demo")
    scene.world = world
    world.color = (1, 1, 1)
    size = demo.get("size", 192)
    renders = out / "renders"
    renders.mkdir(exist_ok=True)
    bounds = np.array([obj.matrix_world @ v.co for v in obj.data.vertices])
    centre, radius = bounds.mean(0), 4.0 * np.abs(bounds - bounds.mean(0)).max()
    side = orbit_camera("demo_side", centre, radius, np.arctan2(*(np.array(input_camera.location)[[1, 0]] - centre[[1, 0]]))
                        + np.pi / 2, 0.3 * radius)
    columns = np.unique(np.linspace(scene.frame_start, scene.frame_end, demo.get("columns", 6)).round().astype(int))
    rows = [[], [], []]
    for frame in columns:
        index = frame - scene.frame_start
        rows[0].append(np.asarray(Image.fromarray(frames_in[min(index, len(frames_in) - 1)]).resize((size, size))))
        rows[1].append(render_still(input_camera, frame, renders / f"{name}_input_{frame:04d}.png", size))
        rows[2].append(render_still(side, frame, renders / f"{name}_side_{frame:04d}.png", size))
    sheet = np.concatenate([np.concatenate(r, axis=1) for r in rows], axis=0)
    Image.fromarray(sheet).save(out / f"{name}_contact.png")
    if turntable:
        frames = []
        count = scene.frame_end - scene.frame_start + 1
        steps = demo.get("turntable", 2 * count)
        for step in range(steps):
            camera = orbit_camera(f"turn_{step}", centre, radius, 2 * np.pi * step / steps, 0.3 * radius)
            frames.append(render_still(camera, scene.frame_start + step % count, renders / f"turn_{step:04d}.png", size))
            bpy.data.objects.remove(camera)
        write_mp4(out / f"{name}_turntable.mp4", np.stack(frames), scene.render.fps / scene.render.fps_base)
    bpy.data.objects.remove(side)
    scene.camera = input_camera


def monocular_demo(video: Path, out: Path, demo: dict) -> dict:
    """A real monocular clip through the Monocular mode: a camera of its own, beside the multi-view result."""
    from backend.io.footage import read_footage

    scene, settings = bpy.context.scene, bpy.context.scene.lim4d
    camera = bpy.data.objects.new("davis_camera", bpy.data.cameras.new("davis_camera"))
    scene.collection.objects.link(camera)
    camera.location, camera.rotation_euler = (8.0, -8.0, 1.5), (np.radians(82), 0.0, 0.0)
    scene.camera = camera
    settings.mode, settings.source, settings.filepath = "MONO", "FILE", str(video)
    settings.frame_start, settings.frame_end, settings.import_key = 0, 0, ""
    started = time.perf_counter()
    if bpy.ops.lim4d.reconstruct() != {"FINISHED"}:
        raise RuntimeError(f"Reconstruct refused: {settings.error}")
    pump()
    report = {"video": video.name, "state": settings.state, "error": settings.error,
              "seconds_total": time.perf_counter() - started}
    obj = current_object()
    if settings.state != "done" or obj is None:
        return report
    report |= {"frames": imported(obj), "expected": obj["lim4d_frames"]}
    frames_in = read_footage(video).frames  # any clip the backend reads, not only GIFs
    render_demo(obj, frames_in, camera, out, demo, name=demo.get("name", "davis"), turntable=False)
    return report


def resolved(operators, scene: bpy.types.Scene) -> tuple[list[str], int]:
    """The files the panel's source sends and the scene frame where the job's first frame shows."""
    videos, _, base, _, _ = operators.gather_inputs(scene)
    return videos, base


def monocular(video: Path, sequence: Path, mask: Path | None = None) -> dict:
    """The three monocular sources resolve to the right file and first frame; then a whole job from ``sequence``, the
    first image of the same frames as a PNG sequence (as renders and roto tools write them), placed in front of the
    scene camera."""
    scene, settings, operators = bpy.context.scene, bpy.context.scene.lim4d, module("operators")
    camera = bpy.data.objects.new("shot_by", bpy.data.cameras.new("shot_by"))
    scene.collection.objects.link(camera)
    # off the origin's line of sight: a result left at the origin would be outside this camera's view
    camera.location, camera.rotation_euler = (12.0, -7.0, 2.0), (np.radians(78), 0.0, np.radians(4))
    scene.camera = camera
    settings.mode, settings.frame_start, settings.frame_end = "MONO", 0, 0
    found = {}
    editor = scene.sequence_editor_create()
    strips = editor.strips if hasattr(editor, "strips") else editor.sequences  # 5.0 renamed sequences to strips
    strip = strips.new_movie("mono", str(video), 1, 7)
    strip.select = True
    settings.source = "STRIPS"
    found["STRIPS"] = resolved(operators, scene)
    strips.remove(strip)
    scene.sequence_editor_clear()  # bpy 4.2 as a module crashes at exit with a movie strip left in the scene
    settings.source = "CLIP"
    clip = bpy.data.movieclips.load(str(video))
    clip.frame_start = 3
    scene.active_clip = clip
    found["CLIP"] = resolved(operators, scene)
    scene.active_clip = None
    bpy.data.movieclips.remove(clip)
    settings.source, settings.filepath = "FILE", str(video)
    found["FILE"] = resolved(operators, scene)
    settings.source, scene.active_clip = "CLIP", bpy.data.movieclips.load(str(sequence))
    found["SEQUENCE"] = resolved(operators, scene)
    if mask is not None:
        settings.mask = bpy.data.movieclips.load(str(mask))
    settings.import_key = ""
    bpy.ops.lim4d.reconstruct()
    pump()
    obj = current_object()
    centre = np.asarray(obj.matrix_world, dtype=np.float64)[:3, 3]
    in_camera = np.linalg.inv(np.asarray(camera.matrix_world, dtype=np.float64)) @ np.append(centre, 1.0)
    return {"sources": {k: [v[0][0], v[1]] for k, v in found.items()}, "video": str(video), "state": settings.state,
            "error": settings.error, "frames": imported(obj), "expected": obj["lim4d_frames"] if obj else None,
            "object_in_camera": in_camera[:3].tolist(), "elevation_deg": operators.camera_elevation(camera),
            "request_mask": json.loads(settings.last_request).get("mask"),
            "request_fps": json.loads(settings.last_request).get("sequence_fps"),
            "scene_fps": scene.render.fps / scene.render.fps_base}


def main(options: dict) -> dict:
    out = Path(options["out"])
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {}
    for obj in list(bpy.data.objects):  # the startup scene's cube, light and camera are not ours
        bpy.data.objects.remove(obj)
    install(options["archive"], options["python"], options.get("checkpoints"))
    settings = bpy.context.scene.lim4d
    bind_clip(Path(options["clip"]))
    if options.get("mask_view") is not None:
        bind_mask(Path(options["clip"]), options["mask_view"], out)
    if options.get("slide_view"):  # {"view": v, "video": the view's clip started early, "early": frames}
        slide = options["slide_view"]
        slide_view(slide["view"], Path(slide["video"]), slide["early"])
    settings.quality, settings.stride = options.get("quality", "preview"), options.get("stride", 2)

    started = time.perf_counter()
    if bpy.ops.lim4d.reconstruct() != {"FINISHED"}:
        raise RuntimeError(f"Reconstruct refused: {settings.error}")
    first_frame = []
    pump(stop_when=lambda: (imported(current_object()) > 0 and not first_frame
                            and first_frame.append(time.perf_counter() - started)) and False)
    report["seconds_to_first_frame"] = first_frame[0] if first_frame else None
    report["seconds_total"] = time.perf_counter() - started
    report["state"], report["error"] = settings.state, settings.error
    if settings.state != "done":
        return report
    report["request_masks"] = json.loads(settings.last_request).get("masks")
    report["request_view_offsets"] = json.loads(settings.last_request).get("view_offsets")
    check_import(report, out, options.get("formats", ["GLTF", "FBX", "ABC", "USD"]))
    if options.get("demo"):
        from backend.io.video import read_video

        frames_in, _ = read_video(Path(options["clip"]) / "view_00.mp4")
        render_demo(current_object(), frames_in, settings.bindings[0].camera, out, options["demo"])
    if options.get("demo_monocular"):
        report["monocular_demo"] = monocular_demo(Path(options["demo_monocular"]), out, options.get("demo") or {})
    bpy.ops.wm.save_as_mainfile(filepath=str(out / "result.blend"))

    if options.get("kill_backend"):
        link = module("backend_link").LINK
        settings.frame_end = 0
        obj_before = current_object()
        obj_before.name = "first_import"
        settings.import_key = ""  # a new import, not a retry of the first
        bpy.ops.lim4d.reconstruct()
        pump(stop_when=lambda: imported(current_object()) >= 2)
        link.process.process.kill()  # kill -9: the add-on must notice and say so
        pump()
        obj = current_object()
        report["killed"] = {"state": settings.state, "error": settings.error, "frames_kept": imported(obj)}
        bpy.ops.lim4d.retry()
        pump()
        report["retried"] = {"state": settings.state, "frames": imported(current_object()),
                             "expected": current_object()["lim4d_frames"], "same_object": current_object() == obj}

    if options.get("cancel"):
        settings.import_key = ""
        settings.retime = 4.0  # a longer job, so Cancel lands mid-way
        bpy.ops.lim4d.reconstruct()
        pump(stop_when=lambda: imported(current_object()) >= 1)
        started = time.perf_counter()
        bpy.ops.lim4d.cancel()
        pump()
        report["cancelled"] = {"state": settings.state, "frames_kept": imported(current_object()),
                               "expected": current_object()["lim4d_frames"], "seconds": time.perf_counter() - started}

    if options.get("reopen"):
        settings.import_key = ""
        bpy.ops.lim4d.reconstruct()
        pump(stop_when=lambda: imported(current_object()) >= 1)
        key = settings.import_key
        path = out / "midway.blend"
        bpy.ops.wm.save_as_mainfile(filepath=str(path))
        saved = imported(current_object())
        bpy.ops.wm.open_mainfile(filepath=str(path))  # load_post resumes the import
        pump()
        obj = module("importer").find_object(key)
        image = obj.active_material.node_tree.nodes["Image Texture"].image
        report["reopened"] = {"frames_at_save": saved, "frames": imported(obj), "expected": obj["lim4d_frames"],
                              "texture_final": obj.get("lim4d_texture_final"),
                              "texture_difference": texture_difference(image, module("backend_link").LINK.client.texture(obj["lim4d_job"]))}
    if options.get("monocular"):
        mask = write_mask(Path(options["clip"]), 0, out) if options.get("mask_view") is not None else None
        report["monocular"] = monocular(Path(options["clip"]) / "view_00.mp4", Path(options["sequence"]), mask)
    online = bool(getattr(bpy.app, "online_access", True))
    report["create_environment"] = {"online_access": online}
    if not online:  # offline Blender: the operator must refuse and say why, installing nothing
        try:  # an operator that reports an error raises here, as it does for scripts in Blender
            result = sorted(bpy.ops.lim4d.create_environment())
        except RuntimeError as error:
            result, report["create_environment"]["message"] = ["CANCELLED"], str(error)
        report["create_environment"]["result"] = result
    return report


if __name__ == "__main__":
    options = json.loads(sys.argv[1])
    try:
        result = main(options)
    finally:
        link = sys.modules.get(f"{PACKAGE}.addon.backend_link")
        if link is not None:
            link.LINK.stop()
    Path(options["out"], "report.json").write_text(json.dumps(result, indent=1, default=str))
    print("DRIVER-REPORT " + json.dumps(result, default=str))
    sys.stdout.flush()
    sys.stderr.flush()
    # bpy 4.2 as a Python module can crash while tearing itself down at interpreter exit (it did here with
    # and without this session's changes); the report is written, so leave without the teardown
    os._exit(0)
