"""4D Gaussians, as L4GM and 4D-LRM output: Gaussians on the tracked surface, one set per frame.

Each Gaussian sits at fixed barycentric coordinates of one triangle of the tracked mesh, so it
follows the same surface point through every frame (a consistent 4D set); its colour comes from
the baked texture; its scale from the local triangle size. Written as standard 3D Gaussian
Splatting PLY files (x, y, z, f_dc_*, opacity as a logit, log scales, rotation quaternion).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from plyfile import PlyData, PlyElement

SH_C0 = 0.28209479177387814  # zeroth spherical-harmonic coefficient: colour = 0.5 + SH_C0 * f_dc


@dataclass
class SurfaceGaussians:
    face: np.ndarray  # (G,) triangle each Gaussian sits on
    barycentric: np.ndarray  # (G, 3)
    colour: np.ndarray  # (G, 3) in [0, 1]

    @staticmethod
    def sample(vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray, texture: np.ndarray, count: int,
               seed: int = 0) -> SurfaceGaussians:
        """``count`` Gaussians spread over the frame-0 surface by area, coloured from the texture."""
        rng = np.random.default_rng(seed)
        tri = vertices[faces]
        area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
        face = rng.choice(len(faces), size=count, p=area / area.sum())
        r1, r2 = rng.uniform(size=(2, count))
        s = np.sqrt(r1)
        bary = np.stack([1 - s, s * (1 - r2), s * r2], axis=1)
        uv = (bary[..., None] * uvs[faces[face]]).sum(axis=1)
        h, w = texture.shape[:2]
        cols = np.clip((uv[:, 0] * w).astype(int), 0, w - 1)
        rows = np.clip(((1 - uv[:, 1]) * h).astype(int), 0, h - 1)
        return SurfaceGaussians(face, bary, texture[rows, cols, :3].astype(np.float32) / 255)

    def at(self, vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Centres (G, 3) and isotropic scales (G,) on the mesh posed by ``vertices``."""
        tri = vertices[faces[self.face]]
        centres = (self.barycentric[..., None] * tri).sum(axis=1)
        all_tri = vertices[faces]
        total_area = 0.5 * np.linalg.norm(np.cross(all_tri[:, 1] - all_tri[:, 0], all_tri[:, 2] - all_tri[:, 0]), axis=1).sum()
        spacing = np.sqrt(total_area / len(self.face))  # mean distance between neighbouring Gaussians
        return centres.astype(np.float32), np.full(len(self.face), 0.7 * spacing, dtype=np.float32)


def write_ply(path: str | Path, centres: np.ndarray, scales: np.ndarray, colours: np.ndarray, opacity: float = 0.95) -> None:
    """One frame of Gaussians in the 3D Gaussian Splatting PLY layout."""
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
             "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    record = np.zeros(len(centres), dtype=[(n, "f4") for n in names])
    record["x"], record["y"], record["z"] = centres.T
    dc = (colours - 0.5) / SH_C0
    record["f_dc_0"], record["f_dc_1"], record["f_dc_2"] = dc.T
    record["opacity"] = np.log(opacity / (1 - opacity))
    for axis in range(3):
        record[f"scale_{axis}"] = np.log(scales)
    record["rot_0"] = 1.0  # identity quaternion (w, x, y, z): isotropic Gaussians need no rotation
    PlyData([PlyElement.describe(record, "vertex")], byte_order="<").write(str(path))


def read_ply(path: str | Path) -> dict[str, np.ndarray]:
    vertex = PlyData.read(str(path))["vertex"]
    centres = np.stack([vertex["x"], vertex["y"], vertex["z"]], axis=1)
    colours = 0.5 + SH_C0 * np.stack([vertex["f_dc_0"], vertex["f_dc_1"], vertex["f_dc_2"]], axis=1)
    return {"centres": centres, "colours": colours, "scales": np.exp(np.asarray(vertex["scale_0"])),
            "opacity": 1 / (1 + np.exp(-np.asarray(vertex["opacity"])))}
