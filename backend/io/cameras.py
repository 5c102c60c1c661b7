"""One pinhole camera type and exact conversions between Blender and OpenCV conventions.

Conventions
-----------
* World: right-handed, +Z up (Blender's world), units of the scene.
* ``Camera.world_to_camera`` is a 4x4 rigid transform into **OpenCV** camera coordinates:
  +X right, +Y down, +Z forward (the camera looks down +Z).
* Blender cameras look down -Z with +Y up; ``camera_from_blender`` = diag(1, -1, -1).
* Pixels: ``u = fx * x / z + cx`` with the centre of pixel column ``i`` at ``u = i + 0.5``
  (so a full image spans ``[0, W] x [0, H]``); ``v`` grows downwards.
* Depth is the camera-space ``z`` (distance along the optical axis), the same quantity
  Blender's ``world_to_camera_view`` returns as its third component.

Plücker rays are 6 channels per pixel: the unit direction ``d`` and moment ``o x d``
(``o`` the camera centre), both in world coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# OpenCV camera axes expressed in Blender camera axes (and back: it is its own inverse).
BLENDER_TO_OPENCV = np.diag([1.0, -1.0, -1.0])


@dataclass(frozen=True)
class Camera:
    """Pinhole camera: intrinsics ``K`` (3x3, pixels) and OpenCV ``world_to_camera`` (4x4)."""

    K: np.ndarray
    world_to_camera: np.ndarray
    width: int
    height: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "K", np.asarray(self.K, dtype=np.float64).reshape(3, 3))
        w2c = np.asarray(self.world_to_camera, dtype=np.float64).reshape(4, 4)
        rot = w2c[:3, :3]
        if not np.allclose(rot @ rot.T, np.eye(3), atol=1e-6) or np.linalg.det(rot) <= 0:
            raise ValueError("world_to_camera must be a rigid transform (rotation + translation)")
        object.__setattr__(self, "world_to_camera", w2c)

    # ------------------------------------------------------------------ geometry
    @property
    def rotation(self) -> np.ndarray:
        return self.world_to_camera[:3, :3]

    @property
    def translation(self) -> np.ndarray:
        return self.world_to_camera[:3, 3]

    @property
    def center(self) -> np.ndarray:
        """Camera centre in world coordinates."""
        return -self.rotation.T @ self.translation

    @property
    def camera_to_world(self) -> np.ndarray:
        return np.linalg.inv(self.world_to_camera)

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """World points (..., 3) -> OpenCV camera coordinates (..., 3)."""
        return points @ self.rotation.T + self.translation

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (..., 3) -> pixel coordinates (..., 2) and depth (...,)."""
        cam = self.to_camera(np.asarray(points, dtype=np.float64))
        z = cam[..., 2]
        uv = cam[..., :2] / z[..., None] * self.K[[0, 1], [0, 1]] + self.K[:2, 2]
        return uv, z

    def projection(self) -> np.ndarray:
        """3x4 matrix K [R | t] taking homogeneous world points to homogeneous pixels."""
        return self.K @ self.world_to_camera[:3]

    def pixel_rays(self) -> tuple[np.ndarray, np.ndarray]:
        """Ray origin (3,) and unit world directions (H, W, 3) through every pixel centre."""
        u = np.arange(self.width) + 0.5
        v = np.arange(self.height) + 0.5
        uu, vv = np.meshgrid(u, v)
        x = (uu - self.K[0, 2]) / self.K[0, 0]
        y = (vv - self.K[1, 2]) / self.K[1, 1]
        dirs_cam = np.stack([x, y, np.ones_like(x)], axis=-1)
        dirs = dirs_cam @ self.rotation  # R^T applied to row vectors
        dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
        return self.center, dirs

    def plucker(self) -> np.ndarray:
        """Plücker ray map (6, H, W) float32: direction d and moment o x d in world space."""
        origin, dirs = self.pixel_rays()
        moment = np.cross(np.broadcast_to(origin, dirs.shape), dirs)
        return np.concatenate([dirs, moment], axis=-1).transpose(2, 0, 1).astype(np.float32)

    def resized(self, width: int, height: int) -> Camera:
        """The same camera at another resolution (intrinsics scaled with the image)."""
        scale = np.diag([width / self.width, height / self.height, 1.0])
        return Camera(scale @ self.K, self.world_to_camera, width, height)

    def seeing(self, width: int, height: int, what: str) -> Camera:
        """This camera for footage of ``width`` x ``height``: resized when the footage is a scaled copy of its image
        (a proxy, a half-size render); a ValueError naming ``what`` when the shapes differ, which would silently
        stretch the footage over the wrong rays (a phone clip turned a quarter, another camera's clip)."""
        if (width, height) == (self.width, self.height):
            return self
        if abs(width * self.height - height * self.width) > 0.01 * width * self.height:
            raise ValueError(f"{what}: the footage is {width}x{height} but its camera's image is {self.width}x{self.height}; "
                             "they must have the same shape (is the clip turned, or bound to another camera?)")
        return self.resized(width, height)

    def at_most(self, side: int) -> Camera:
        """The same camera with its image shrunk, if need be, to at most ``side`` pixels along either side."""
        shrink = max(self.width, self.height) / side
        if shrink <= 1:
            return self
        return self.resized(max(1, round(self.width / shrink)), max(1, round(self.height / shrink)))

    # ------------------------------------------------------------------ builders
    @staticmethod
    def look_at(
        eye: np.ndarray,
        target: np.ndarray | tuple[float, float, float],
        up: tuple[float, float, float] = (0.0, 0.0, 1.0),
        fov_deg: float = 40.0,
        width: int = 256,
        height: int = 256,
    ) -> Camera:
        """A camera at ``eye`` looking at ``target``; ``fov_deg`` is the horizontal field of view."""
        eye, target, up = (np.asarray(a, dtype=np.float64) for a in (eye, target, up))
        forward = target - eye
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, up)
        if np.linalg.norm(right) < 1e-9:  # looking straight along `up`
            right = np.cross(forward, np.array([0.0, 1.0, 0.0]))
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        rot = np.stack([right, down, forward])  # rows: camera axes in world coordinates
        w2c = np.eye(4)
        w2c[:3, :3] = rot
        w2c[:3, 3] = -rot @ eye
        focal = 0.5 * width / np.tan(np.radians(fov_deg) / 2)
        K = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]])
        return Camera(K, w2c, width, height)

    # ------------------------------------------------------------------ Blender
    @staticmethod
    def from_blender(
        matrix_world: np.ndarray,
        lens: float,
        sensor_width: float,
        sensor_height: float,
        sensor_fit: str,
        shift_x: float,
        shift_y: float,
        width: int,
        height: int,
    ) -> Camera:
        """Build from a Blender camera's plain data (square pixels assumed).

        ``matrix_world`` may carry scale; only its rotation and location are used, as Blender does.
        """
        m = np.asarray(matrix_world, dtype=np.float64).reshape(4, 4)
        rot_bl = m[:3, :3] / np.linalg.norm(m[:3, :3], axis=0, keepdims=True)
        location = m[:3, 3]
        rot = BLENDER_TO_OPENCV @ rot_bl.T  # world -> OpenCV camera
        w2c = np.eye(4)
        w2c[:3, :3] = rot
        w2c[:3, 3] = -rot @ location

        fit = sensor_fit.upper()
        if fit == "AUTO":
            fit = "HORIZONTAL" if width >= height else "VERTICAL"
            sensor = sensor_width
        else:
            sensor = sensor_width if fit == "HORIZONTAL" else sensor_height
        fit_pixels = width if fit == "HORIZONTAL" else height
        focal = lens / sensor * fit_pixels
        cx = width / 2 - shift_x * fit_pixels
        cy = height / 2 + shift_y * fit_pixels
        K = np.array([[focal, 0, cx], [0, focal, cy], [0, 0, 1]])
        return Camera(K, w2c, width, height)

    def to_blender(self, sensor_width: float = 36.0) -> dict[str, Any]:
        """Plain data for a Blender camera (``sensor_fit='HORIZONTAL'``) reproducing this one."""
        fx, fy = self.K[0, 0], self.K[1, 1]
        if not np.isclose(fx, fy, rtol=1e-9):
            raise ValueError("Blender cameras have square pixels: fx must equal fy")
        c2w_bl = np.eye(4)
        c2w_bl[:3, :3] = self.rotation.T @ BLENDER_TO_OPENCV
        c2w_bl[:3, 3] = self.center
        return {
            "matrix_world": c2w_bl,
            "lens": fx * sensor_width / self.width,
            "sensor_width": sensor_width,
            "sensor_fit": "HORIZONTAL",
            "shift_x": (self.width / 2 - self.K[0, 2]) / self.width,
            "shift_y": (self.K[1, 2] - self.height / 2) / self.width,
            "width": self.width,
            "height": self.height,
        }

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "height": self.height,
            "K": self.K.tolist(),
            "world_to_camera": self.world_to_camera.tolist(),
        }

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Camera:
        try:
            return Camera(data["K"], data["world_to_camera"], int(data["width"]), int(data["height"]))
        except KeyError as missing:
            raise ValueError(f"camera entry lacks {missing}") from None


def ring_cameras(
    count: int,
    rng: np.random.Generator,
    radius: float = 2.6,
    elevation_deg: tuple[float, float] = (-10.0, 35.0),
    fov_deg: float = 40.0,
    size: int = 256,
    target: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> list[Camera]:
    """``count`` cameras evenly spaced in azimuth (random start) with random elevations."""
    target = np.asarray(target, dtype=np.float64)
    start = rng.uniform(0, 2 * np.pi)
    cameras = []
    for i in range(count):
        azimuth = start + 2 * np.pi * i / count
        elevation = np.radians(rng.uniform(*elevation_deg))
        eye = target + radius * np.array(
            [np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)]
        )
        cameras.append(Camera.look_at(eye, target, fov_deg=fov_deg, width=size, height=size))
    return cameras
