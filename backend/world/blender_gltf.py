"""Render an animated glTF asset in real Blender: RGBA views and evaluated meshes per frame.

Runs in its own process, never inside the backend: either with the `bpy` module
(``python -m backend.world.blender_gltf ARGS``) or a Blender binary
(``blender -b --factory-startup --python blender_gltf.py -- ARGS``). It writes:

    OUT/rgba/view_VV_frame_FFFF.png   Workbench renders, transparent film
    OUT/meshes.npz                    vertices (F, N, 3) in normalised world space, faces, times
    OUT/render.json                   normalisation, animation, fps, frame numbers, cameras

Scene coordinates are normalised (centre of the animation's bounding box at the origin, the
largest half-extent scaled to 0.8) so assets of any size land in the same box as world objects.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from backend.io.cameras import Camera, ring_cameras

HALF_EXTENT = 0.8


def play_animation(name: str | None) -> bpy.types.Action:
    """Make ``name`` (default: the first, alphabetically) the only animation that plays."""
    actions = sorted(bpy.data.actions, key=lambda a: a.name)
    if not actions:
        raise SystemExit("the asset has no animation")
    chosen = actions[0] if name is None else bpy.data.actions.get(name)
    if chosen is None:
        raise SystemExit(f"no animation {name!r}; the asset has: {', '.join(a.name for a in actions)}")
    for datablock in list(bpy.data.objects) + list(bpy.data.shape_keys):
        anim = datablock.animation_data
        if anim is None:
            continue
        for track in anim.nla_tracks:
            track.mute = True
        slot = next((s for s in chosen.slots if s.target_id_type == _id_type(datablock) and s.name_display == datablock.name), None)
        if slot is None:
            slot = next((s for s in chosen.slots if s.target_id_type == _id_type(datablock)), None)
        anim.action = chosen if slot is not None else None
        if slot is not None:
            anim.action_slot = slot
    return chosen


def _id_type(datablock: bpy.types.ID) -> str:
    return "KEY" if isinstance(datablock, bpy.types.Key) else "OBJECT"


def evaluated_mesh(depsgraph: bpy.types.Depsgraph) -> tuple[np.ndarray, np.ndarray]:
    """The mesh objects a render shows, evaluated (skinning, morphs) and triangulated, in world space.

    Importers park unused meshes in hidden collections: those are skipped, as the render skips them.
    """
    vertices, faces, offset = [], [], 0
    for obj in sorted(bpy.context.scene.objects, key=lambda o: o.name):
        if obj.type != "MESH" or obj.hide_render or not obj.visible_get():
            continue
        evaluated = obj.evaluated_get(depsgraph)
        mesh = evaluated.to_mesh()
        mesh.calc_loop_triangles()
        co = np.empty(len(mesh.vertices) * 3, dtype=np.float64)
        mesh.vertices.foreach_get("co", co)
        co = co.reshape(-1, 3)
        matrix = np.array(evaluated.matrix_world)
        vertices.append(co @ matrix[:3, :3].T + matrix[:3, 3])
        tri = np.empty(len(mesh.loop_triangles) * 3, dtype=np.int64)
        mesh.loop_triangles.foreach_get("vertices", tri)
        faces.append(tri.reshape(-1, 3) + offset)
        offset += len(co)
        evaluated.to_mesh_clear()
    if not vertices:
        raise SystemExit("the asset has no mesh")
    return np.concatenate(vertices), np.concatenate(faces)


def set_frame(scene: bpy.types.Scene, frame: float) -> None:
    whole = int(np.floor(frame))
    scene.frame_set(whole, subframe=float(frame - whole))


def blender_camera(scene: bpy.types.Scene, camera: Camera, name: str) -> bpy.types.Object:
    spec = camera.to_blender()
    data = bpy.data.cameras.new(name)
    data.lens, data.sensor_width, data.sensor_fit = spec["lens"], spec["sensor_width"], spec["sensor_fit"]
    data.shift_x, data.shift_y = spec["shift_x"], spec["shift_y"]
    data.clip_start, data.clip_end = 1e-3, 1e5
    obj = bpy.data.objects.new(name, data)
    scene.collection.objects.link(obj)
    obj.matrix_world = Matrix(spec["matrix_world"].tolist())  # rows
    return obj


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gltf", required=True)
    parser.add_argument("--animation", default=None)
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fov", type=float, default=40.0)
    parser.add_argument("--engine", default="BLENDER_WORKBENCH", choices=["BLENDER_WORKBENCH", "CYCLES"])
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    out = Path(args.out)
    (out / "rgba").mkdir(parents=True, exist_ok=True)

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    bpy.ops.import_scene.gltf(filepath=args.gltf)
    action = play_animation(args.animation)
    start, end = (float(f) for f in action.frame_range)
    times = np.linspace(0.0, 1.0, args.frames)
    frame_numbers = start + times * (end - start)

    raw = []
    faces = None
    for frame in frame_numbers:
        set_frame(scene, frame)
        vertices, faces = evaluated_mesh(bpy.context.evaluated_depsgraph_get())
        raw.append(vertices)
    raw_vertices = np.stack(raw)
    low, high = raw_vertices.min(axis=(0, 1)), raw_vertices.max(axis=(0, 1))
    centre = (low + high) / 2
    scale = HALF_EXTENT / ((high - low).max() / 2)
    vertices = (raw_vertices - centre) * scale

    cameras = ring_cameras(args.views, np.random.default_rng(args.seed), fov_deg=args.fov, size=args.size)
    scene.render.engine = args.engine
    scene.render.resolution_x = scene.render.resolution_y = args.size
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = True
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.view_settings.view_transform = "Standard"
    if args.engine == "BLENDER_WORKBENCH":
        scene.display.shading.light = "STUDIO"
        scene.display.shading.color_type = "TEXTURE"
    else:
        scene.cycles.samples = 16
        scene.cycles.device = "CPU"
    for vi, camera in enumerate(cameras):
        # the same camera in the asset's own units: same rotation, centre mapped back
        centre_bl = camera.center / scale + centre
        w2c = camera.world_to_camera.copy()
        w2c[:3, 3] = -camera.rotation @ centre_bl
        scene.camera = blender_camera(scene, Camera(camera.K, w2c, camera.width, camera.height), f"view_{vi:02d}")
        for fi, frame in enumerate(frame_numbers):
            set_frame(scene, frame)
            scene.render.filepath = str(out / "rgba" / f"view_{vi:02d}_frame_{fi:04d}.png")
            bpy.ops.render.render(write_still=True)

    np.savez_compressed(out / "meshes.npz", vertices=vertices.astype(np.float32), faces=faces.astype(np.int32), times=times)
    fps = scene.render.fps / scene.render.fps_base
    (out / "render.json").write_text(json.dumps({
        "gltf": str(Path(args.gltf).resolve()),
        "animation": action.name,
        "scene_fps": fps,
        "frame_numbers": frame_numbers.tolist(),
        "duration_s": (end - start) / fps,
        "normalisation": {"centre": centre.tolist(), "scale": float(scale)},
        "cameras": [c.to_dict() for c in cameras],
        "engine": args.engine,
    }, indent=1))


if __name__ == "__main__":
    main(sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:])
