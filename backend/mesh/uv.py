"""UV atlas with xatlas, isolated in a child process.

xatlas 0.0.11 segfaults on some meshes; a crash in a child costs one retry, then a simple
per-triangle atlas (always valid, less compact) instead of the backend.
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_module
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class Atlas:
    vertex_map: np.ndarray  # (N',) index of the source vertex of each atlas vertex (seams duplicate)
    faces: np.ndarray  # (M, 3) faces over atlas vertices
    uvs: np.ndarray  # (N', 2) in [0, 1], origin bottom-left (glTF flips v)
    method: str  # "xatlas" or "fallback"


def _xatlas(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import xatlas

    return xatlas.parametrize(vertices, faces)


def _child(worker: Callable, mesh_file: str, queue: mp.Queue) -> None:
    with np.load(mesh_file) as mesh:
        queue.put(worker(mesh["vertices"], mesh["faces"]))


def _run_isolated(worker: Callable, vertices: np.ndarray, faces: np.ndarray, timeout: float):
    # The mesh goes by file, not in the process arguments: CPython writes the arguments into a pipe whose read
    # end it holds itself until the write ends, so a child that dies while starting up (before reading them
    # all) would block the parent for ever once they pass the pipe's 64 KB.
    with tempfile.TemporaryDirectory(prefix="lim4d-uv-") as folder:
        mesh_file = f"{folder}/mesh.npz"
        np.savez(mesh_file, vertices=vertices, faces=faces)
        return _wait_for_child(worker, mesh_file, timeout)


def _wait_for_child(worker: Callable, mesh_file: str, timeout: float):
    context = mp.get_context("spawn")  # a clean interpreter: no torch threads inherited
    queue = context.Queue()
    process = context.Process(target=_child, args=(worker, mesh_file, queue), daemon=True)
    process.start()
    deadline = time.monotonic() + timeout
    result = None
    while time.monotonic() < deadline:
        try:
            result = queue.get(timeout=0.2)
            break
        except queue_module.Empty:
            if not process.is_alive() and queue.empty():
                break  # crashed: nothing will come
    process.join(timeout=5)
    if process.is_alive():
        process.kill()
    return result


def per_triangle_atlas(faces: np.ndarray) -> Atlas:
    """Each triangle in its own cell of a square grid, with a margin: crude but never fails."""
    count = len(faces)
    side = int(np.ceil(np.sqrt(count)))
    cell = 1.0 / side
    margin = 0.1 * cell
    index = np.arange(count)
    origin = np.stack([index % side, index // side], axis=1) * cell + margin
    span = cell - 2 * margin
    corners = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]) * span
    uvs = (origin[:, None, :] + corners[None]).reshape(-1, 2)
    return Atlas(faces.reshape(-1).copy(), np.arange(3 * count).reshape(-1, 3), uvs, "fallback")


def unwrap(vertices: np.ndarray, faces: np.ndarray, timeout: float = 120.0, retries: int = 1,
           worker: Callable = _xatlas) -> Atlas:
    vertices = np.ascontiguousarray(vertices, dtype=np.float32)
    faces = np.ascontiguousarray(faces, dtype=np.uint32)
    for _ in range(retries + 1):
        result = _run_isolated(worker, vertices, faces, timeout)
        if result is not None:
            vmapping, indices, uvs = result
            return Atlas(np.asarray(vmapping, np.int64), np.asarray(indices, np.int64), np.asarray(uvs, np.float32), "xatlas")
    return per_triangle_atlas(faces.astype(np.int64))
