"""A tracked mesh sequence as one GLB: one morph target per frame and a weights animation.

Positions are stored relative to frame 0 (the base mesh); the animation's weights are one-hot
per frame with LINEAR interpolation, so a time between two frames blends exactly those two.
Our world is +Z up (Blender's); glTF is +Y up: (x, y, z) -> (x, z, -y), which Blender's importer
turns back. UVs follow glTF's top-left origin.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pygltflib as gl
from PIL import Image

Z_UP_TO_Y_UP = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], dtype=np.float32)


class _Buffer:
    """Accumulates binary chunks (4-byte aligned) and their accessors."""

    def __init__(self, gltf: gl.GLTF2) -> None:
        self.gltf, self.data = gltf, bytearray()

    def view(self, payload: bytes, target: int | None = None) -> int:
        self.data += b"\0" * (-len(self.data) % 4)
        self.gltf.bufferViews.append(gl.BufferView(buffer=0, byteOffset=len(self.data), byteLength=len(payload), target=target))
        self.data += payload
        return len(self.gltf.bufferViews) - 1

    def accessor(self, array: np.ndarray, kind: str, target: int | None = None, bounds: bool = False) -> int:
        component = gl.UNSIGNED_INT if array.dtype == np.uint32 else gl.FLOAT
        view = self.view(array.tobytes(), target)
        accessor = gl.Accessor(bufferView=view, componentType=component, count=len(array), type=kind)
        if bounds:
            accessor.min = array.min(axis=0).tolist() if array.ndim > 1 else [float(array.min())]
            accessor.max = array.max(axis=0).tolist() if array.ndim > 1 else [float(array.max())]
        self.gltf.accessors.append(accessor)
        return len(self.gltf.accessors) - 1


def write_morph_glb(path: str | Path, frames: np.ndarray, faces: np.ndarray, fps: float,
                    uvs: np.ndarray | None = None, texture: np.ndarray | None = None, name: str = "lim4d") -> None:
    """frames (F, N, 3) world positions (+Z up), faces (M, 3), uvs (N, 2) bottom-left origin, texture (H, W, 3) uint8."""
    frames = np.asarray(frames, dtype=np.float32) @ Z_UP_TO_Y_UP.T
    base = np.ascontiguousarray(frames[0])
    gltf = gl.GLTF2(scene=0, scenes=[gl.Scene(nodes=[0])], asset=gl.Asset(generator="lim4d"))
    buffer = _Buffer(gltf)
    attributes = gl.Attributes(POSITION=buffer.accessor(base, gl.VEC3, gl.ARRAY_BUFFER, bounds=True))
    if uvs is not None:
        flipped = np.ascontiguousarray(np.column_stack([uvs[:, 0], 1 - uvs[:, 1]]).astype(np.float32))
        attributes.TEXCOORD_0 = buffer.accessor(flipped, gl.VEC2, gl.ARRAY_BUFFER)
    targets = [gl.Attributes(POSITION=buffer.accessor(np.ascontiguousarray(f - base), gl.VEC3, gl.ARRAY_BUFFER, bounds=True))
               for f in frames]
    indices = buffer.accessor(np.ascontiguousarray(faces, dtype=np.uint32).reshape(-1), gl.SCALAR, gl.ELEMENT_ARRAY_BUFFER)
    primitive = gl.Primitive(attributes=attributes, indices=indices, targets=targets)
    if texture is not None:
        png = io.BytesIO()
        Image.fromarray(texture).save(png, format="PNG")
        gltf.images.append(gl.Image(bufferView=buffer.view(png.getvalue()), mimeType="image/png"))
        gltf.samplers.append(gl.Sampler(magFilter=gl.LINEAR, minFilter=gl.LINEAR_MIPMAP_LINEAR))
        gltf.textures.append(gl.Texture(source=0, sampler=0))
        gltf.materials.append(gl.Material(name=f"{name}_material", pbrMetallicRoughness=gl.PbrMetallicRoughness(
            baseColorTexture=gl.TextureInfo(index=0), metallicFactor=0.0, roughnessFactor=1.0)))
        primitive.material = 0
    count = len(frames)
    gltf.meshes.append(gl.Mesh(name=name, primitives=[primitive], weights=[0.0] * count,
                               extras={"targetNames": [f"frame_{i:04d}" for i in range(count)]}))
    gltf.nodes.append(gl.Node(name=name, mesh=0))
    times = (np.arange(count, dtype=np.float32) / fps)
    weights = np.eye(count, dtype=np.float32).reshape(-1)
    sampler = gl.AnimationSampler(input=buffer.accessor(times, gl.SCALAR, bounds=True),
                                  output=buffer.accessor(weights, gl.SCALAR), interpolation=gl.ANIM_LINEAR)
    channel = gl.AnimationChannel(sampler=0, target=gl.AnimationChannelTarget(node=0, path="weights"))
    gltf.animations.append(gl.Animation(name=f"{name}_motion", samplers=[sampler], channels=[channel]))
    gltf.buffers.append(gl.Buffer(byteLength=len(buffer.data)))
    gltf.set_binary_blob(bytes(buffer.data))
    gltf.save_binary(str(path))
