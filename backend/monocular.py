"""Monocular clips: one camera's footage -> the same multi-view reconstruction as a multi-view clip.

    footage -> matte -> one steady framing (the object centred, filling the view as world objects fill
    the training views) -> a virtual input camera -> the diffusion model generates the other views of
    each keyframe (in order, sharing noise and conditioning on the previous keyframe) -> a clip whose
    view 0 is the framed footage and views 1.. the generated views -> LRM, LIM, mesh, tracking.

The LRM reads views only at keyframes, so the generated views are held between keyframes. When the
camera that shot the clip is known (Blender's active camera), `placement` maps the reconstruction,
which lives in the virtual camera's frame, to where that camera sees the object.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from backend.io.cameras import Camera
from backend.io.clip_folder import ClipFolder
from backend.io.footage import read_footage
from backend.io.framing import Framing, frame_object
from backend.io.matte import foreground
from backend.models.view_generators import ORBIT_RADIUS, orbit_camera
from backend.pipeline import keyframe_indices, output_positions

MODEL_RADIUS = ORBIT_RADIUS  # the training cameras' distance from the object
MODEL_FOV_DEG = 40.0
DEFAULT_ELEVATION_DEG = 10.0  # a camera a little above the object, the middle of the training range
WORKING_SIDE = 1024  # footage is shrunk to this many pixels a side as it is decoded (the matte and the framing work on it)
WORKING_SUPERSAMPLE = 16  # ... or to this many times the model's view, for models that read larger views
FILL = 0.7  # median share of a training view's side that a world object's motion covers


@dataclass
class MonocularClip:
    clip: ClipFolder  # view 0: the framed footage; views 1..: generated at keyframes, held between
    keys: list[int]  # the keyframes whose views were generated


def virtual_camera(size: int, elevation_deg: float = DEFAULT_ELEVATION_DEG) -> Camera:
    """The input camera the model assumes: on the -Y side at the training distance, looking at the origin."""
    return orbit_camera(-np.pi / 2, np.radians(elevation_deg), size, MODEL_FOV_DEG)


def frame_footage(frames: np.ndarray, alpha: np.ndarray | None, size: int, user_masks: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray, Framing, str]:
    """uint8 footage (F, H, W, 3) -> framed frames (F, size, size, 3) on white, their masks, the framing, the matte method."""
    matte = foreground(frames, alpha, user_masks)
    framing = frame_object(matte.masks, size, FILL)
    coverage = matte.masks.astype(np.float32) if alpha is None else alpha * matte.masks
    framed, masks = framing.apply(frames, coverage)
    return framed, masks, framing, matte.method


def monocular_clip(framed: np.ndarray, generator, stride: int, fps: float, elevation_deg: float = DEFAULT_ELEVATION_DEG,
                   seed: int = 0, camera: Camera | None = None) -> MonocularClip:
    """Generate the keyframes' other views and assemble the multi-view clip the reconstruction reads.

    ``generator``: a view generator of backend.models.view_generators (our model or a user's pipeline).
    ``camera``: the input camera, when it is known in the model's terms (the benchmark's world clips);
    by default the virtual camera at ``elevation_deg``.
    """
    size = generator.image_size
    count = len(framed)
    keys = keyframe_indices(count, stride)
    images = torch.as_tensor(framed[keys]).float().permute(0, 3, 1, 2) / 255
    if images.shape[-1] != size:
        images = F.interpolate(images, size=(size, size), mode="area")
    generated = generator.generate(images, float(np.radians(elevation_deg)), seed)
    generated = (generated.permute(0, 1, 3, 4, 2).numpy() * 255).round().clip(0, 255).astype(np.uint8)  # (K, G, s, s, 3)
    side = framed.shape[1]
    if side != size:
        generated = np.stack([[_resize(view, side) for view in views] for views in generated])
    held = np.searchsorted(keys, np.arange(count), side="right") - 1  # the keyframe at or before each frame
    views = np.concatenate([framed[None], generated[held].transpose(1, 0, 2, 3, 4)], axis=0)
    camera = virtual_camera(side, elevation_deg) if camera is None else camera.resized(side, side)
    cameras = [camera, *generator.cameras(camera)]
    clip = ClipFolder(views, cameras, np.linspace(0, 1, count), fps, generated_views=tuple(range(1, len(cameras))))
    return MonocularClip(clip, keys)


def _resize(image: np.ndarray, side: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((side, side), Image.Resampling.BICUBIC))


def placement(framing: Framing, shot_by: Camera, virtual: Camera) -> np.ndarray:
    """4x4 transform from the virtual camera's frame to the world of the camera that shot the clip.

    The object keeps its size; it goes along the ray through the framing window's centre, at the depth
    where it covers as many clip pixels as the window says, turned so that the shooting camera sees the
    side the virtual camera saw.
    """
    centre = np.array([framing.left + framing.side / 2, framing.top + framing.side / 2, 1.0])
    ray = np.linalg.inv(shot_by.K) @ centre
    ray /= np.linalg.norm(ray)
    # clip pixels per unit at depth D: f_shot / D; model pixels per unit at the model radius: f_virtual / R
    depth = MODEL_RADIUS * shot_by.K[0, 0] * framing.scale / virtual.K[0, 0] * (virtual.width / framing.size)
    turn = _rotation_between(np.array([0.0, 0.0, 1.0]), ray)
    shift = np.eye(4)
    shift[2, 3] = depth / ray[2] - MODEL_RADIUS  # depth is the z-depth; the object goes along the ray
    rotate = np.eye(4)
    rotate[:3, :3] = turn
    return shot_by.camera_to_world @ rotate @ shift @ virtual.world_to_camera


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation taking unit vector a to unit vector b."""
    axis = np.cross(a, b)
    s, c = np.linalg.norm(axis), float(a @ b)
    if s < 1e-12:
        return np.eye(3)
    k = axis / s
    skew = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * skew + (1 - c) * skew @ skew


@dataclass
class FramedFootage:
    frames: np.ndarray  # (F, size, size, 3) uint8 on white
    masks: np.ndarray  # (F, size, size) float coverage
    framing: Framing
    matte_method: str
    fps: float
    source_size: tuple[int, int]  # width, height of the footage the framing's pixels refer to (shrunk as decoded)
    filmed_size: tuple[int, int]  # width, height as filmed


def load_monocular(path: Path, size: int, frame_start: int = 0, frame_end: int | None = None, fps: float | None = None,
                   mask_path: Path | None = None, sequence_fps: float | None = None) -> FramedFootage:
    """Decode frames [frame_start, frame_end) of a monocular clip (a file or an image sequence playing at
    ``sequence_fps``), matte and frame them.
    Only those frames are decoded, each shrunk to ``WORKING_SIDE`` (or ``size`` times ``WORKING_SUPERSAMPLE``): the
    framing averages the object's window down to ``size`` anyway."""
    side = max(WORKING_SIDE, WORKING_SUPERSAMPLE * size)
    footage = read_footage(path, fps, frame_start, frame_end, side, sequence_fps)
    user = None
    if mask_path is not None:  # a mask sequence gives one image a frame of its clip
        user = read_footage(mask_path, fps, frame_start, frame_start + len(footage.frames), side, footage.fps).frames
        if user.shape[1:3] != footage.frames.shape[1:3] or len(user) < len(footage.frames):
            raise ValueError(f"{mask_path}: {len(user)} frame(s) at {user.shape[2]}x{user.shape[1]}; the mask clip must match "
                             f"its clip ({footage.frames.shape[2]}x{footage.frames.shape[1]} as read, {len(footage.frames)} "
                             f"frame(s) from frame {frame_start})")
    framed, masks, framing, method = frame_footage(footage.frames, footage.alpha, size, user)
    return FramedFootage(framed, masks, framing, method, footage.fps, (footage.frames.shape[2], footage.frames.shape[1]),
                         footage.source_size)


def reconstruct_monocular(source: Path, models, out: Path, settings, progress, shot_by: Camera | None = None,
                          frame_start: int = 0, frame_end: int | None = None, mask_path: Path | None = None,
                          elevation_deg: float = DEFAULT_ELEVATION_DEG, seed: int = 0,
                          sequence_fps: float | None = None) -> dict:
    """A monocular clip through the whole pipeline into the job folder ``out`` (see backend.reconstruct); an image
    sequence plays at ``sequence_fps`` (default 24).

    ``shot_by``: the camera that shot the clip, in scene coordinates; the result is placed where it sees
    the object. Without it the result stays in the model's frame (object at the origin, z up).
    """
    from PIL import Image

    from backend.reconstruct import fitted_frames, reconstruct

    generator = models.diffusion()  # first: a missing model is the clearer error
    models = models.monocular()
    with progress.stage("decode"):
        size = max(models.lrm.config.image_size, generator.image_size)  # the LRM reads a downsized copy
        footage = load_monocular(source, size, frame_start, frame_end, mask_path=mask_path, sequence_fps=sequence_fps)
    with progress.stage("views"):
        mono = monocular_clip(footage.frames, generator, settings.stride, footage.fps, elevation_deg, seed)
    out.mkdir(parents=True, exist_ok=True)
    keyframe_views = mono.clip.frames[:, mono.keys]  # (V, K, s, s, 3): a row per view
    Image.fromarray(np.concatenate([np.concatenate(list(row), axis=1) for row in keyframe_views])).save(out / "views.png")
    world = None
    if shot_by is not None:
        world = placement(footage.framing, shot_by.seeing(*footage.source_size, f"{source.name}, the shooting camera"),
                          mono.clip.cameras[0])
    positions = output_positions(len(footage.frames), settings.retime, settings.times)
    geometry = fitted_frames(models, mono.clip, settings, positions, progress, mattes=footage.masks[None], seed=seed)
    extra = {"units": "model units: one camera does not tell the object's size",
             "monocular": {"framing": footage.framing.to_dict(), "matte": footage.matte_method,
                           "elevation_deg": elevation_deg, "keyframes_generated": len(mono.keys),
                           "source_size": list(footage.source_size), "filmed_size": list(footage.filmed_size),
                           "placed_by_camera": shot_by is not None}}
    extra["monocular"]["fit_steps"] = settings.fit_steps
    return reconstruct(mono.clip, models, out, settings, progress, geometry, world_transform=world, extra=extra)
