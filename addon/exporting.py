"""Bake the shape-key animation to glTF, FBX, Alembic or USD, with the settings that keep it, and check it.

The flags matter: glTF needs morph animation without morph normals; FBX drops the shape-key animation
unless all-actions and NLA-strip baking are off. Each export can be validated by re-importing it into
a scratch scene and comparing vertex positions at sampled frames with the original's.
"""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np

from . import importer

FORMATS = {"GLTF": ".glb", "FBX": ".fbx", "ABC": ".abc", "USD": ".usdc"}


def export(obj: bpy.types.Object, fmt: str, path: str | Path) -> Path:
    path = Path(path).with_suffix(FORMATS[fmt])
    scene = bpy.context.scene
    for other in bpy.context.view_layer.objects:
        other.select_set(other == obj)
    bpy.context.view_layer.objects.active = obj
    if fmt == "GLTF":
        bpy.ops.export_scene.gltf(filepath=str(path), export_format="GLB", use_selection=True, export_animations=True,
                                  export_morph=True, export_morph_normal=False, export_morph_animation=True,
                                  export_apply=False)
    elif fmt == "FBX":
        bpy.ops.export_scene.fbx(filepath=str(path), use_selection=True, bake_anim=True, bake_anim_use_all_actions=False,
                                 bake_anim_use_nla_strips=False, use_mesh_modifiers=False, add_leaf_bones=False)
    elif fmt == "ABC":
        bpy.ops.wm.alembic_export(filepath=str(path), selected=True, start=scene.frame_start, end=scene.frame_end,
                                  uvs=True, face_sets=True, normals=True)
    elif fmt == "USD":
        bpy.ops.wm.usd_export(filepath=str(path), selected_objects_only=True, export_animation=True, export_uvmaps=True,
                              export_materials=True)
    else:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return path


DATA_KINDS = ("objects", "meshes", "materials", "images", "actions", "shape_keys", "cameras", "lights")


def _datablocks() -> dict[str, set]:
    return {kind: set(getattr(bpy.data, kind)) for kind in DATA_KINDS}


def _remove_new(before: dict[str, set]) -> None:
    """Remove every datablock a re-import added, so nothing of it stays in the .blend (e.g. USD images)."""
    for kind in DATA_KINDS:
        collection = getattr(bpy.data, kind)
        for block in [b for b in collection if b not in before[kind]]:
            if kind != "shape_keys":  # shape keys go with their meshes
                collection.remove(block)


def reimport(fmt: str, path: Path) -> list[bpy.types.Object]:
    before = set(bpy.data.objects)
    if fmt == "GLTF":
        bpy.ops.import_scene.gltf(filepath=str(path))
    elif fmt == "FBX":
        bpy.ops.import_scene.fbx(filepath=str(path), anim_offset=0.0)  # the FBX times are absolute; the default shifts by 1
    elif fmt == "ABC":
        bpy.ops.wm.alembic_import(filepath=str(path))
    elif fmt == "USD":
        bpy.ops.wm.usd_import(filepath=str(path))
    return [o for o in bpy.data.objects if o not in before]


def validate(obj: bpy.types.Object, fmt: str, path: Path, frames: list[int]) -> float:
    """Re-import ``path``; the largest world-space distance between its vertices and ``obj``'s over ``frames``.

    Exporters may split vertices at UV seams (glTF) or reorder them, so each re-imported vertex is matched
    to the original whose trajectory over ``frames`` is nearest; every frame compares along that matching.
    The re-imported objects are removed again and the scene's timing restored.
    """
    scene = bpy.context.scene
    timing = (scene.frame_start, scene.frame_end, scene.render.fps, scene.render.fps_base, scene.frame_current)
    source = {f: _world(obj, importer.evaluated_positions(obj, f)) for f in frames}
    existing = _datablocks()
    imported = reimport(fmt, path)
    try:
        meshes = [o for o in imported if o.type == "MESH"]
        if len(meshes) != 1:
            raise RuntimeError(f"{path.name}: re-import gave {len(meshes)} meshes")
        copy = meshes[0]
        scene.frame_start, scene.frame_end, scene.render.fps, scene.render.fps_base = timing[:4]
        copied = {f: _world(copy, importer.evaluated_positions(copy, f)) for f in frames}
        # match whole trajectories: two vertices can nearly coincide at one frame and part later
        matching = _nearest(np.concatenate([copied[f] for f in frames], axis=1),
                            np.concatenate([source[f] for f in frames], axis=1))
        return max(float(np.linalg.norm(copied[f] - source[f][matching], axis=1).max()) for f in frames)
    finally:
        _remove_new(existing)
        scene.frame_start, scene.frame_end, scene.render.fps, scene.render.fps_base = timing[:4]
        scene.frame_set(timing[4])


def _world(obj: bpy.types.Object, local: np.ndarray) -> np.ndarray:
    matrix = np.array(obj.matrix_world, dtype=np.float64)
    return (local @ matrix[:3, :3].T + matrix[:3, 3]).astype(np.float32)


def _nearest(points: np.ndarray, reference: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Index of the nearest ``reference`` point for each of ``points`` (numpy only: Blender has no scipy)."""
    # centred float64: far from the origin (a placed monocular result), float32 |r|² - 2p·r loses the gaps
    centre = reference.mean(axis=0)
    points, reference = points.astype(np.float64) - centre, reference.astype(np.float64) - centre
    out = np.empty(len(points), dtype=np.int64)
    squared = (reference**2).sum(1)
    for start in range(0, len(points), chunk):
        block = points[start:start + chunk]
        distance = squared[None, :] - 2 * block @ reference.T
        out[start:start + chunk] = distance.argmin(1)
    return out


class LIM4D_OT_export(bpy.types.Operator):  # noqa: N801
    """Export the active lim4d object's animation (glTF, FBX, Alembic or USD), checked by re-import"""

    bl_idname = "lim4d.export"
    bl_label = "Export 4D"

    format: bpy.props.EnumProperty(name="Format", items=[
        ("GLTF", "glTF (.glb)", "Morph-target animation"), ("FBX", "FBX", "Shape-key animation"),
        ("ABC", "Alembic", "Baked vertex cache with UVs and face sets"), ("USD", "USD", "Animated points"),
    ], default="GLTF")
    filepath: bpy.props.StringProperty(subtype="FILE_PATH")
    check: bpy.props.BoolProperty(name="Validate by Re-import", default=True)

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        obj = context.active_object
        return obj is not None and obj.get(importer.KEY_PROP) is not None

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        self.filepath = bpy.path.abspath("//") + context.active_object.name + FORMATS[self.format]
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        obj = context.active_object
        path = export(obj, self.format, bpy.path.abspath(self.filepath))
        if self.check:
            scene = context.scene
            frames = sorted({scene.frame_start, (scene.frame_start + scene.frame_end) // 2, scene.frame_end})
            error = validate(obj, self.format, path, frames)
            if error > 1e-3:
                self.report({"WARNING"}, f"{path.name}: re-imported vertices differ by up to {error:.4f}")
                return {"FINISHED"}
            self.report({"INFO"}, f"{path.name}: exported and checked ({error:.1e} max difference)")
        return {"FINISHED"}


CLASSES = (LIM4D_OT_export,)
