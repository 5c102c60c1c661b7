"""The morph-target GLB in real Blender: the animation plays the per-frame positions back."""

from pathlib import Path

import numpy as np
import pytest

from backend.mesh.gltf import write_morph_glb
from backend.world import make_object

bpy = pytest.importorskip("bpy")


def _evaluated(obj, frame: float) -> np.ndarray:
    scene = bpy.context.scene
    scene.frame_set(int(np.floor(frame)), subframe=float(frame - np.floor(frame)))
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    mesh = evaluated.to_mesh()
    co = np.empty(len(mesh.vertices) * 3)
    mesh.vertices.foreach_get("co", co)
    matrix = np.array(evaluated.matrix_world)
    evaluated.to_mesh_clear()
    return co.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]


def test_glb_round_trips_through_blender(tmp_path: Path) -> None:
    obj = make_object(11)
    frames = np.stack([obj.vertices_at(t) for t in np.linspace(0, 1, 10)])
    uvs = np.random.default_rng(0).uniform(size=(frames.shape[1], 2)).astype(np.float32)
    texture = np.zeros((16, 16, 3), np.uint8)
    texture[..., 0] = 255
    write_morph_glb(tmp_path / "seq.glb", frames, obj.faces, fps=24, uvs=uvs, texture=texture)

    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.scene.render.fps = 24
    bpy.ops.import_scene.gltf(filepath=str(tmp_path / "seq.glb"))
    mesh_obj = next(o for o in bpy.context.scene.objects if o.type == "MESH")
    assert len(mesh_obj.data.vertices) == frames.shape[1]
    assert len(mesh_obj.data.shape_keys.key_blocks) == len(frames) + 1  # Basis + one per frame
    for frame in (0, 3, 9):
        np.testing.assert_allclose(_evaluated(mesh_obj, frame), frames[frame], atol=1e-5)
    halfway = _evaluated(mesh_obj, 4.5)
    np.testing.assert_allclose(halfway, (frames[4] + frames[5]) / 2, atol=1e-5)
    # the texture came along, and the UVs with it (v flipped back to bottom-left)
    image = next(iter(bpy.data.images))
    assert tuple(image.size) == (16, 16)
    uv_layer = mesh_obj.data.uv_layers.active.data
    loops = np.empty(len(uv_layer) * 2)
    uv_layer.foreach_get("uv", loops)
    vertex_of_loop = np.empty(len(mesh_obj.data.loops), dtype=np.int64)
    mesh_obj.data.loops.foreach_get("vertex_index", vertex_of_loop)
    np.testing.assert_allclose(loops.reshape(-1, 2), uvs[vertex_of_loop], atol=1e-6)
