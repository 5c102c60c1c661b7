"""Main-thread side of an import: the messages of session.py become an object, shape keys and keyframes.

The mesh arrives once (object, UVs, material with the baked texture); then one relative shape key per
frame, its points set with `foreach_set`, keyed one-hot (0 / 1 / 0 on the neighbouring frames, linear in
between, so sub-frame scrubbing blends two tracked frames) so the timeline scrubs and glTF / FBX /
Alembic / USD export it. Works on Blender 4.2 and 5.0 (keyframe_insert manages actions, slots and
channelbags on both; new shape keys default to 1.0 in 5.0, so values are always set explicitly).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import bpy
import numpy as np
from mathutils import Matrix

JOB_PROP, FRAMES_PROP, BASE_PROP, KEY_PROP = "lim4d_job", "lim4d_frames", "lim4d_base_frame", "lim4d_import"
# 0 while the texture repainted from every frame has not arrived, 1 once it has (or the job ended without one); an
# object without it predates the repaint and counts as final
TEXTURE_PROP = "lim4d_texture_final"


def frame_key_name(index: int) -> str:
    return f"frame_{index:04d}"


def find_object(key: str) -> bpy.types.Object | None:
    return next((o for o in bpy.data.objects if o.type == "MESH" and o.get(KEY_PROP) == key), None)


def imported_frames(obj: bpy.types.Object) -> set[int]:
    keys = obj.data.shape_keys if obj.type == "MESH" else None
    if keys is None:
        return set()
    return {int(k.name[6:]) for k in keys.key_blocks if k.name.startswith("frame_") and k.name[6:].isdigit()}


def import_complete(obj: bpy.types.Object) -> bool:
    """Every frame is in and the repainted texture too (nothing left for a resumed session to fetch)."""
    expected = obj.get(FRAMES_PROP) or 0
    return bool(expected) and len(imported_frames(obj)) >= expected and obj.get(TEXTURE_PROP, 1) != 0


def build_object(key: str, job_id: str, data: dict[str, Any], scene: bpy.types.Scene, base_frame: int) -> bpy.types.Object:
    """The object for an import, or the existing one when its topology matches (a resumed or retried job)."""
    vertices = np.asarray(data["vertices"], dtype=np.float32)
    faces = np.asarray(data["faces"], dtype=np.int32)
    existing = find_object(key)
    if existing is not None and len(existing.data.vertices) == len(vertices) and len(existing.data.polygons) == len(faces):
        if existing.get(JOB_PROP) != job_id:  # a retried job repaints its texture again
            existing[TEXTURE_PROP] = 0
        existing[JOB_PROP] = job_id
        return existing
    if existing is not None:  # topology changed: start over rather than mix two meshes
        bpy.data.objects.remove(existing)
    mesh = bpy.data.meshes.new(f"lim4d_{key}")
    mesh.vertices.add(len(vertices))
    mesh.vertices.foreach_set("co", vertices.ravel())
    mesh.loops.add(faces.size)
    mesh.loops.foreach_set("vertex_index", faces.ravel())
    mesh.polygons.add(len(faces))
    mesh.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    mesh.polygons.foreach_set("loop_total", np.full(len(faces), 3, dtype=np.int32))
    uv_layer = mesh.uv_layers.new(name="UVMap")
    uv_layer.data.foreach_set("uv", np.asarray(data["uvs"], dtype=np.float32)[faces.ravel()].ravel())
    mesh.update(calc_edges=True)
    mesh.validate()
    mesh.materials.append(_material(key, data["texture"]))
    obj = bpy.data.objects.new(f"lim4d_{key}", mesh)
    if data.get("world_transform"):  # monocular: in front of the camera that shot the clip
        # a Matrix from rows: a plain nested list would be read column by column (the translation lost)
        obj.matrix_world = Matrix(np.asarray(data["world_transform"], dtype=np.float64).tolist())
    scene.collection.objects.link(obj)
    obj[KEY_PROP], obj[JOB_PROP], obj[BASE_PROP] = key, job_id, base_frame
    obj[TEXTURE_PROP] = 0
    obj.shape_key_add(name="Basis", from_mix=False)
    return obj


def _packed_image(key: str, png: bytes) -> bpy.types.Image:
    """The PNG as an image packed into the .blend, so it travels with it."""
    handle, path = tempfile.mkstemp(suffix=".png", prefix="lim4d_")
    with os.fdopen(handle, "wb") as out:
        out.write(png)
    try:
        image = bpy.data.images.load(path)
        image.name = f"lim4d_{key}"
        image.pack()
        image.filepath = ""
        image[KEY_PROP] = key  # ours: a repaint replaces this image and no other
    finally:
        os.remove(path)
    return image


def _material(key: str, png: bytes) -> bpy.types.Material:
    """A Principled BSDF fed by the baked texture."""
    image = _packed_image(key, png)
    material = bpy.data.materials.new(f"lim4d_{key}")
    material.use_nodes = True
    nodes = material.node_tree.nodes
    shader = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
    texture = nodes.new("ShaderNodeTexImage")
    texture.image = image
    material.node_tree.links.new(texture.outputs["Color"], shader.inputs["Base Color"])
    return material


def replace_texture(obj: bpy.types.Object, png: bytes) -> None:
    """The object's texture becomes ``png`` (the backend repaints it once every frame is tracked); the old image goes.
    Only the image this import made is replaced (marked, or named as imports before the marker named it): a material
    or image the user swapped in stays as it is."""
    key = obj[KEY_PROP]

    def ours(image: bpy.types.Image) -> bool:
        return image.get(KEY_PROP) == key or (KEY_PROP not in image and image.name == f"lim4d_{key}")

    nodes = [node for material in obj.data.materials if material is not None and material.use_nodes
             for node in material.node_tree.nodes if node.type == "TEX_IMAGE" and node.image is not None and ours(node.image)]
    obj[TEXTURE_PROP] = 1
    if not nodes:
        return
    image = _packed_image(key, png)
    old = {node.image.name: node.image for node in nodes}
    for node in nodes:
        node.image = image
    for previous in old.values():
        if previous.users == 0:
            bpy.data.images.remove(previous)
    image.name = f"lim4d_{key}"  # the old one's name, now free (not "….001")


def add_frame(obj: bpy.types.Object, index: int, vertices: np.ndarray) -> None:
    """Frame ``index`` as a shape key, keyed one-hot at scene frame base + index."""
    name = frame_key_name(index)
    blocks = obj.data.shape_keys.key_blocks
    block = blocks.get(name) or obj.shape_key_add(name=name, from_mix=False)
    block.points.foreach_set("co", np.ascontiguousarray(vertices, dtype=np.float32).ravel())
    frame = obj.get(BASE_PROP, 1) + index
    for offset, value in ((-1, 0.0), (0, 1.0), (1, 0.0)):
        block.value = value
        block.keyframe_insert("value", frame=frame + offset)
    block.value = 0.0
    obj.data.update()


def follow_clip_timing(scene: bpy.types.Scene, base_frame: int, frames: int, fps: float | None) -> None:
    """The scene's range covers the streamed frames; its rate follows the clip's."""
    scene.frame_start = base_frame
    scene.frame_end = base_frame + max(frames, 1) - 1
    if fps:
        whole = max(round(fps), 1)
        scene.render.fps = whole
        scene.render.fps_base = whole / fps


def evaluated_positions(obj: bpy.types.Object, frame: int) -> np.ndarray:
    """World-free vertex positions of ``obj`` as the depsgraph evaluates them at ``frame``."""
    scene = bpy.context.scene
    scene.frame_set(frame)
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    mesh = evaluated.to_mesh()
    try:
        out = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
        mesh.vertices.foreach_get("co", out)
    finally:
        evaluated.to_mesh_clear()
    return out.reshape(-1, 3)
