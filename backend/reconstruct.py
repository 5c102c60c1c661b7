"""`python -m backend reconstruct`: a multi-view clip -> a tracked, UV-textured mesh sequence.

    clip -> keyframes (LRM) + in-betweens (LIM) -> triplane per frame
         -> mesh once from frame 0 (marching cubes, cleanup, decimation, UV atlas, texture bake)
         -> canonical chain (LRM‾/LIM‾) -> canonical field per frame -> tracked vertices per frame
         -> job folder

Job folder: mesh.npz (vertices, faces, uvs), texture.png, frames/frame_NNNN.npy (float32 N x 3,
one per frame, written as soon as it is final), manifest.json (fps, times, units, world
transform, stage timings, quality report), preview.png, animation.glb, gaussians/frame_NNNN.ply
(4D Gaussians on the tracked surface) and preview.mp4 (their turntable).
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from backend.input_fit import FitSettings, fit_to_footage
from backend.io.cameras import Camera
from backend.io.clip_folder import ClipFolder
from backend.io.clip_source import cameras_from_file, load_clip, sequence_gaps, view_side
from backend.io.video import write_mp4
from backend.mesh.extract import EmptyFieldError, decimate, density_grid, extract_mesh
from backend.mesh.flow_canonical import FlowCanonical
from backend.mesh.gaussians import SurfaceGaussians, write_ply
from backend.mesh.gltf import write_morph_glb
from backend.mesh.level import LevelChoice, choose_level
from backend.mesh.outline import Outline, trusted
from backend.mesh.projection import Footage
from backend.mesh.texture import bake
from backend.mesh.track import (
    SurfaceFollower,
    lay_onto_surface,
    mesh_quality,
    reject_outliers,
    smooth_in_time,
    track_vertices,
    vertex_neighbours,
)
from backend.mesh.uv import Atlas, unwrap
from backend.models.canonical import CanonicalChain
from backend.models.checkpoints import load_checkpoint
from backend.pipeline import Reconstruction, keyframe_indices, model_views, output_positions, reconstruct_frames
from backend.render.splat import render_gaussians
from backend.render.volume import render_triplane

GRID = 96
OUTLIER_FRACTION = 0.05  # a vertex whose motion differs from its ring's by this much of the mesh's size is an outlier


@dataclass
class Settings:
    stride: int = 4
    target_faces: int = 8000
    texture_size: int = 512
    grid: int = GRID  # density grid of the frame-0 mesh
    track_grid: int = 64  # per-frame grid for surface samples (tracking needs samples, not a fine mesh)
    gaussians: bool = True  # write the 4D Gaussians and their turntable preview
    gaussian_count: int = 20000
    preview_size: int = 128
    retime: float = 1.0  # output frames per input frame (> 1: in-betweens from LIM's continuous time)
    times: list[float] | None = None  # or exactly these frame positions
    fit_steps: int = 30  # Adam steps fitting each keyframe to the footage views (backend.input_fit); 0: off
    # the fit's correction as a pyramid of planes at 1, 1/2, 1/4, 1/8 resolution (backend.input_fit.FitSettings.scales):
    # world seeds 1000001-3, views nobody filmed 17.4 -> 19.1 dB PSNR_FG (a single full-resolution correction: (1,));
    # the two glTF assets prefer (1,) (tracked mesh 13.3 against 12.6 dB: RESULTS, bench track row 18)
    fit_scales: tuple[int, ...] = (1, 2, 4, 8)
    # monocular jobs: the share of the footage rays drawn where the unfitted result disagrees most with the
    # footage (backend.input_fit.FitSettings.error_share); multi-view jobs draw them uniformly
    fit_aimed_share: float = 0.5
    flow_tracking: bool = True  # where footage sees the surface, optical flow (not the learned field) gives its canonical coordinates
    landmark_weight: float = 0.1  # how hard the canonical matches pull on the tracked mesh (backend.mesh.track)
    registration: str = "arap"  # how the mesh follows each frame's surface: "arap" or "nricp" (backend.mesh.track)
    stiffness: float = 10.0  # ARAP's weight against the surface terms
    # monocular jobs: their surfaces come from one real view and generated ones, and a mesh as stiff as for a multi-view
    # clip cannot follow them (a box lid swinging open stays shut): world seeds 1000000-3, the tracked mesh seen from
    # the input camera 13.9 -> 15.1 dB PSNR over the true foreground (bench mono, session 25;
    # 10 / 3 / 1 / 0.3 / 0.1: 13.9 / 14.5 / 14.9 / 15.05 / 15.07 dB, vertex error 11.6 / 11.9 / 12.1 / 12.0 / 12.0 %)
    monocular_stiffness: float = 0.3
    # how hard the footage's mattes pull the tracked mesh's silhouettes onto them (backend.mesh.outline); 0: off.
    # Chosen on monocular world seeds 1000000-3 (3 / 10 / 30: 17.9 / 18.2 / 17.9 dB from the input camera, none 16.7);
    # multi-view seeds 1000000-3 +1.35 dB PSNR_FG; seeds 1000004-7 about even, a pendulum with pixel-wide bars loses
    # (RESULTS: bench track rows 40-42; Fox + RiggedFigure +0.7 dB, vertex error 3.20 -> 3.05 %)
    outline_weight: float = 10.0
    # of that, how hard an edge vertex is held on the matte's nearest edge (the other pulls weigh 1). Multi-view world
    # seeds 1000000-3 on cached triplanes (session 30), hold 1 / 0.3 / 0.1 / 0: vertex error 4.19 / 3.75 / 3.71 / 3.76 %,
    # tracked mesh PSNR_FG 20.87 / 20.90 / 20.58 / 20.26 dB, whole image 23.62 / 24.27 / 24.28 / 24.29 dB
    outline_hold: float = 0.3
    monocular_outline_hold: float = 1.0  # a monocular job's surfaces are made up: its outline holds at full weight
    surface_level: float | None = None  # density of the mesh's isosurface; None: the one outlining the footage best
    texture_from_footage: bool = True  # paint the texture from the footage views where they see the mesh (else the field)
    # once tracked, paint it again from the footage of every frame where tracking put the mesh (the first texture
    # streams with the mesh; this one replaces it): world seeds 1000000-3, tracked mesh 18.2 -> 19.1 dB PSNR_FG
    texture_over_time: bool = True
    # at most this many frames, evenly spread, paint it (on 2 CPU cores about 0.1 s each with four 64² views, 0.3 s with
    # four 1080p ones)
    repaint_frames: int = 64
    # a frame whose surface's size (``surface_extent``) falls outside this share of the frame-0 mesh's bounding-box
    # diagonal holds the mesh still (AnimatedMorphCube: 19.7 -> 11.8 % vertex error; world seeds 1000000-7 never
    # reach either bound)
    surface_extent_range: tuple[float, float] = (0.5, 1.6)
    lay_onto_surface: bool = True  # each tracked frame's vertices on its reconstructed surface (off: as registered)

    def fit_settings(self, seed: int = 0, monocular: bool = False) -> FitSettings:
        return FitSettings(steps=self.fit_steps, seed=seed, scales=tuple(self.fit_scales),
                           error_share=self.fit_aimed_share if monocular else 0.0)

    @staticmethod
    def for_quality(quality: str, **overrides: object) -> Settings:
        """A preset from ``protocol.QUALITY_PRESETS`` with explicit choices (None = keep the preset's) on top."""
        from backend.protocol import QUALITY_PRESETS

        if quality not in QUALITY_PRESETS:
            raise ValueError(f"unknown quality {quality!r}; choose one of {', '.join(QUALITY_PRESETS)}")
        values = {**QUALITY_PRESETS[quality], **{k: v for k, v in overrides.items() if v is not None}}
        return Settings(**values)


MONOCULAR_LRM, MONOCULAR_LIM = "lrm_mono", "lim_mono"


@dataclass
class Models:
    lrm: torch.nn.Module
    lim: torch.nn.Module
    lrm_c: torch.nn.Module
    lim_c: torch.nn.Module
    folder: Path | None = None
    device: str = "cpu"  # where the networks run; field queries (meshing, baking, tracking) stay on the CPU
    _diffusion: object | None = None
    _on_device: tuple[torch.nn.Module, torch.nn.Module] | None = None

    @staticmethod
    def load(folder: Path, device: str = "cpu") -> Models:
        missing = [n for n in ("lrm", "lim", "lrm_canonical", "lim_canonical") if not (folder / n).is_dir()]
        if missing:
            raise FileNotFoundError(f"{folder}: missing checkpoint folders {', '.join(missing)}")
        return Models(load_checkpoint(folder / "lrm", "lrm"), load_checkpoint(folder / "lim", "lim"),
                      load_checkpoint(folder / "lrm_canonical", "lrm"), load_checkpoint(folder / "lim_canonical", "lim"),
                      folder, device)

    def monocular(self) -> Models:
        """The models for a monocular clip: the LRM and LIM trained on generated views (lrm_mono/, lim_mono/)
        where the folder has them, else these.

        The tiny LRM trained on true views trusts every view's silhouette and carves the object away
        when the views are generated; trained on generated views it hedges, which costs multi-view
        clips 1.7 dB. So each kind of clip gets the pair trained for it.
        """
        if self.folder is None or not (self.folder / MONOCULAR_LRM).is_dir():
            return self
        if not (self.folder / MONOCULAR_LIM).is_dir():
            raise FileNotFoundError(f"{self.folder}: {MONOCULAR_LRM}/ needs its {MONOCULAR_LIM}/ beside it")
        return replace(self, lrm=load_checkpoint(self.folder / MONOCULAR_LRM, "lrm"),
                       lim=load_checkpoint(self.folder / MONOCULAR_LIM, "lim"), _on_device=None)

    def networks(self) -> tuple[torch.nn.Module, torch.nn.Module]:
        """LRM and LIM on the compute device (the CPU models themselves when that is the CPU)."""
        if self.device == "cpu":
            return self.lrm, self.lim
        if self._on_device is None:
            self._on_device = (copy.deepcopy(self.lrm).to(self.device), copy.deepcopy(self.lim).to(self.device))
        return self._on_device

    def diffusion(self):
        """The view generator for monocular clips (checkpoints/mvdiff: ours, or a user's diffusers pipeline)."""
        if self._diffusion is None:
            from backend.models.view_generators import load_view_generator

            if self.folder is None or not (self.folder / "mvdiff").is_dir():
                raise FileNotFoundError(f"{self.folder}: no mvdiff folder; monocular clips need a view generator")
            self._diffusion = load_view_generator(self.folder / "mvdiff", self.device)
        return self._diffusion


@dataclass
class Progress:
    """Stage timings; ``on_event`` receives ("stage", name) as a stage starts, ("mesh", info) and
    ("frame", (index, position)) as results are written, and ("texture", {}) once texture.png is repainted."""

    on_event: Callable[[str, object], None] = lambda kind, value: None
    timings: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.on_event("stage", name)
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - started, 3)


def fitted_frames(models: Models, clip: ClipFolder, settings: Settings, positions: np.ndarray, progress: Progress,
                  mattes: np.ndarray | None = None, seed: int = 0) -> Reconstruction:
    """The triplane at every output position: LRM at the keyframes, LIM between them, then (``settings.fit_steps``)
    each frame fitted to the clip's footage views, its generated views (if any) holding the sides
    (backend.input_fit). ``mattes`` (footage views, F, H, W) in [0, 1]; by default the footage's own mattes."""
    lrm, lim = models.networks()
    footage = clip.footage_views
    fit = settings.fit_steps > 0 and bool(footage)
    # the fit needs every keyframe's triplane, which chosen output times may skip
    wanted = np.union1d(positions, keyframe_indices(len(clip.times), settings.stride)) if fit else positions
    with progress.stage("lrm_lim"):
        geometry = reconstruct_frames(lrm, lim, clip.frames, clip.cameras, clip.times, settings.stride, wanted)
    if not fit:
        return geometry
    with progress.stage("fit"):
        if mattes is None:
            mattes = np.stack([clip.matte(v) for v in footage]).astype(np.float32)
        geometry = fit_to_footage(lrm, geometry, wanted, [clip.cameras[v] for v in footage], clip.frames[footage], mattes,
                                  [clip.cameras[v] for v in clip.generated_views],
                                  settings.fit_settings(seed, monocular=bool(clip.generated_views)))
    keep = np.searchsorted(wanted, positions)
    return Reconstruction([geometry.planes[i] for i in keep], geometry.keyframes, geometry.times[keep])


def frame_surface(lrm, planes: torch.Tensor, grid: int, level: float):
    """The isosurface of one frame's triplane (a trimesh); its vertices are the frame's surface samples."""
    density = density_grid(lambda p: lrm.decoder(planes, p).density, grid, lrm.config.bound)
    return extract_mesh(density, lrm.config.bound, level, keep_fraction=0.0)


def surface_level(clip: ClipFolder, grid: np.ndarray, bound: float, settings: Settings, frame: int) -> LevelChoice:
    """The settings' level, or the one whose mesh outlines the footage views' mattes at ``frame`` best."""
    if settings.surface_level is not None:
        return LevelChoice(settings.surface_level)
    views = clip.footage_views
    masks = [clip.matte(v)[frame] for v in views]
    return choose_level(grid, bound, [clip.cameras[v] for v in views], masks)


def mesh_footage(clip: ClipFolder, frame: int) -> Footage:
    """The footage views at ``frame`` (generated views are no footage) and their mattes (the clip's, matted once)."""
    views = clip.footage_views
    return Footage([clip.cameras[v] for v in views], clip.frames[views, frame], np.stack([clip.matte(v)[frame] for v in views]))


def frame_outlines(clip: ClipFolder, position: float, hold: float = 1.0) -> list[Outline]:
    """The footage views' mattes at output ``position`` when it shows a whole input frame (else none: footage exists
    only there); ``hold``: how hard they hold the mesh's edge on theirs (``Outline.hold``)."""
    frame = int(np.rint(position))
    if abs(position - frame) > 1e-6 or not 0 <= frame < clip.frames.shape[1]:
        return []
    return [Outline(clip.cameras[v], clip.matte(v)[frame], hold) for v in clip.footage_views]


def surface_extent(points: np.ndarray, share: float = 2.0) -> float:
    """The diagonal of the box holding all but ``share`` % of ``points`` at each end of every axis: a frame's size that
    a few specks above the level do not swell. Monocular frames carry such specks of haze: on every point, world seed
    1000002's surfaces spanned 1.3-1.9 of its mesh and 21 of 31 frames were held still; trimmed, 0.9-1.6 and none."""
    low, high = np.percentile(points, [share, 100 - share], axis=0)
    return float(np.linalg.norm(high - low))


def canonical_at(lrm_c, planes: torch.Tensor, points: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return lrm_c.decoder(planes, torch.as_tensor(points)[None]).canonical[0].numpy()


def save_atomically(path: Path, array: np.ndarray) -> None:
    """``array`` as .npy (or as an image, for a .png ``path``) through a temporary name: a crash or kill never leaves
    half a file under the real name, and a reader never sees one."""
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as handle:
        if path.suffix == ".png":
            Image.fromarray(array).save(handle, format="PNG")
        else:
            np.save(handle, array)
    os.replace(partial, path)


def reconstruct(clip: ClipFolder, models: Models, out: Path, settings: Settings | None = None,
                progress: Progress | None = None, geometry: Reconstruction | None = None,
                world_transform: np.ndarray | None = None, extra: dict | None = None) -> dict:
    """Run the pipeline on ``clip`` into the job folder ``out``; ``geometry`` reuses triplanes already computed.

    ``world_transform`` places the result in the scene (monocular clips: where the shooting camera saw
    it); ``extra`` adds entries to the manifest.
    """
    world = np.eye(4) if world_transform is None else np.asarray(world_transform, dtype=np.float64)
    settings = settings or Settings()
    progress = progress or Progress()
    out.mkdir(parents=True, exist_ok=True)
    (out / "frames").mkdir(exist_ok=True)
    lrm = models.lrm
    frame_count = clip.frames.shape[1]
    positions = output_positions(frame_count, settings.retime, settings.times)
    keys = keyframe_indices(frame_count, settings.stride)

    if geometry is None:
        geometry = fitted_frames(models, clip, settings, positions, progress)
    elif len(geometry.planes) != len(positions):
        raise ValueError(f"precomputed geometry has {len(geometry.planes)} frames, the settings ask for {len(positions)}")

    with progress.stage("marching_cubes"):
        grid = density_grid(lambda p: lrm.decoder(geometry.planes[0], p).density, settings.grid, lrm.config.bound)
        first = min(int(np.rint(positions[0])), frame_count - 1)  # the footage frame the mesh's triplane shows
        choice = surface_level(clip, grid, lrm.config.bound, settings, first)
        mesh = extract_mesh(grid, lrm.config.bound, choice.level)
    with progress.stage("decimation"):
        mesh = decimate(mesh, settings.target_faces)
    with progress.stage("uv"):
        atlas = unwrap(np.asarray(mesh.vertices), np.asarray(mesh.faces))
    with progress.stage("texture"):
        vertices0 = np.asarray(mesh.vertices, dtype=np.float32)[atlas.vertex_map]
        faces = atlas.faces
        with torch.no_grad():
            texture = bake(np.asarray(mesh.vertices), atlas, lambda p: lrm.decoder(geometry.planes[0], p[None]).rgb[0],
                           settings.texture_size, footage=mesh_footage(clip, first) if settings.texture_from_footage else None)
        Image.fromarray(texture).save(out / "texture.png")
        np.savez(out / "mesh.npz", vertices=vertices0, faces=faces.astype(np.int32), uvs=atlas.uvs)
    progress.on_event("mesh", {"vertices": len(vertices0), "faces": len(faces), "uv": atlas.method,
                               "frames": len(positions), "fps": clip.fps, "times": positions.tolist(),
                               "world_transform": world.tolist()})

    with progress.stage("tracking"):
        tracked, held = track_sequence(clip, models, geometry, vertices0, faces, keys, positions, settings,
                                       choice.level, out, progress)

    later = painting_frames(positions, frame_count, first, set(held), settings.repaint_frames - 1) \
        if settings.texture_from_footage and settings.texture_over_time and clip.footage_views else []
    if later:
        with progress.stage("repaint"):
            texture = repaint(clip, atlas, np.asarray(mesh.vertices), tracked, positions, first, later,
                              settings.texture_size, lambda p: lrm.decoder(geometry.planes[0], p[None]).rgb[0])
            save_atomically(out / "texture.png", texture)
        progress.on_event("texture", {})

    if settings.gaussians:
        with progress.stage("gaussians"):
            write_gaussians(out, tracked, faces, atlas.uvs, texture, clip.fps, settings)

    with progress.stage("outputs"):
        quality = mesh_quality(tracked, faces)
        write_morph_glb(out / "animation.glb", tracked, faces, clip.fps, uvs=atlas.uvs, texture=texture)
        _preview(lrm, geometry.planes, positions, clip, out / "preview.png")
        manifest = {
            "format": "lim4d-job", "version": 1, "fps": clip.fps, "frame_count": len(positions),
            "positions": positions.tolist(), "times": [float(t) for t in geometry.times], "keyframes": keys,
            "units": "scene units of the input cameras", "world_transform": world.tolist(),
            "vertices": len(vertices0), "faces": len(faces), "uv_method": atlas.method,
            "surface_level": {"level": choice.level, "silhouette_iou": {str(k): round(v, 4) for k, v in choice.scores.items()}},
            "views_put_on_white": list(clip.put_on_white_views),  # their background was matted away on loading
            "quality": {"flipped_pct": quality.flipped_pct, "stretched_pct": quality.stretched_pct,
                        "frames_kept_still": len(held)},
            "timings_s": progress.timings, **(extra or {}),
        }
        (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def repaint(clip: ClipFolder, atlas: Atlas, vertices: np.ndarray, tracked: np.ndarray, positions: np.ndarray, first: int,
            later: list[int], size: int, colour) -> np.ndarray:
    """The texture painted from the footage of the mesh's frame ``first`` and of the output frames ``later``
    (``painting_frames``), each where the tracked mesh lies at it; the footage is cut one frame at a time."""
    with torch.no_grad():
        return bake(vertices, atlas, colour, size, footage=mesh_footage(clip, first),
                    tracked=((tracked[i], mesh_footage(clip, int(np.rint(positions[i])))) for i in later))


def painting_frames(positions: np.ndarray, frame_count: int, first: int, skip: set[int], most: int) -> list[int]:
    """Output frames after the first that show a whole input frame other than ``first`` (footage exists only there),
    one per input frame, leaving out those in ``skip`` (held still: the mesh is not where their footage shows the
    object); at most ``most`` of them, evenly spread."""
    whole, seen = [], {first}
    for i in range(1, len(positions)):
        frame = int(np.rint(positions[i]))
        if i not in skip and abs(positions[i] - frame) < 1e-6 and 0 <= frame < frame_count and frame not in seen:
            whole.append(i)
            seen.add(frame)  # an input frame paints once, however many output frames show it
    if len(whole) > most:
        whole = [whole[j] for j in np.unique(np.linspace(0, len(whole) - 1, max(most, 0)).round().astype(int))]
    return whole


def track_sequence(clip: ClipFolder, models: Models, geometry: Reconstruction, vertices0: np.ndarray, faces: np.ndarray,
                   keys: list[int], positions: np.ndarray, settings: Settings, level: float, out: Path,
                   progress: Progress) -> tuple[np.ndarray, list[int]]:
    """Move the frame-0 vertices through every output position along the canonical chain, writing each
    frame as soon as it is final (centred smoothing needs its successor). Correspondences that disagree
    with their mesh neighbours are replaced; then the previous frame's mesh is registered onto this
    frame's reconstructed surface (its isosurface at ``level``, as the frame-0 mesh's) by non-rigid ICP,
    with those correspondences as landmarks. Returns the frames and the indices of those held still (they repeat
    the previous one): weak frames, and frames no registration could place."""
    lrm = models.lrm
    chain = CanonicalChain(lrm, models.lrm_c, models.lim_c)
    size = lrm.config.image_size
    views = {k: model_views(clip.frames[:, k], clip.cameras, size) for k in keys}
    cameras = [c.resized(size, size) for c in clip.cameras]
    maps = chain.start(views[0], cameras)
    count = len(positions)
    # copies of a vertex along UV seams must move together: work on the position-welded mesh
    _, first, inverse = np.unique(vertices0, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    welded_faces = inverse[faces]
    neighbours = vertex_neighbours(welded_faces, len(first))
    stiffness = settings.monocular_stiffness if clip.generated_views else settings.stiffness
    hold = settings.monocular_outline_hold if clip.generated_views else settings.outline_hold
    follower = SurfaceFollower(vertices0[first], welded_faces, guess_weight=settings.landmark_weight,
                               method=settings.registration, stiffness=stiffness, outline_weight=settings.outline_weight)
    flow = FlowCanonical(clip.frames, clip.cameras, clip.footage_views, vertices0[first], welded_faces) \
        if settings.flow_tracking and clip.footage_views else None
    size0 = float(np.linalg.norm(np.ptp(vertices0, axis=0)))
    stray = OUTLIER_FRACTION * size0
    # frames' sizes are measured against frame 0's surface sampled the same way (the mesh itself was cleaned of specks
    # and drawn on a finer grid: against it, a monocular job's surfaces measured 1.5-1.9 on world seed 1000001, and
    # 21 of 31 frames were held still)
    try:
        reference = surface_extent(np.asarray(frame_surface(lrm, geometry.planes[0], settings.track_grid, level).vertices))
    except EmptyFieldError:  # the coarser grid misses a surface the mesh's grid found: the mesh's own size
        reference = size0
    raw = np.zeros((count, len(vertices0), 3), dtype=np.float32)
    raw[0] = vertices0
    tracked = raw.copy()

    def emit(i: int) -> None:
        if 0 < i < count - 1:
            tracked[i] = smooth_in_time(raw[i - 1:i + 2])[1]
        else:
            tracked[i] = raw[i]
        save_atomically(out / "frames" / f"frame_{i:04d}.npy", tracked[i])
        progress.on_event("frame", (i, float(positions[i])))

    emit(0)
    held: list[int] = []
    codes = None
    for k, nxt in tqdm(list(itertools.pairwise(keys)), desc="tracking", unit="segment", leave=False):
        inside = [i for i in range(1, count) if k < positions[i] <= nxt]
        alphas = [(positions[i] - k) / (nxt - k) for i in inside]
        segment = chain.segment(maps, views[k], views[nxt], alphas if codes is not None else [0.0, *alphas], cameras)
        if codes is None:
            # each vertex's code is what the propagated field itself says at frame 0, not its exact XYZ:
            # the field's own bias (it shrinks toward the object's centre) then cancels in the matching
            codes = canonical_at(models.lrm_c, segment.planes.pop(0), vertices0)
        for i, canonical_planes in zip(inside, segment.planes, strict=True):
            try:
                surface = frame_surface(lrm, geometry.planes[i], settings.track_grid, level)
                extent = surface_extent(np.asarray(surface.vertices)) / reference
            except EmptyFieldError:
                surface, extent = None, 0.0
            low, high = settings.surface_extent_range
            if surface is None or not low <= extent <= high:
                # a weak frame: its reconstruction never reaches the mesh's level, or its surface shrank or swelled
                # far from the frame-0 mesh's size (a blob or haze, not the object): the mesh holds its last place,
                # as when no registration succeeds
                held.append(i)
                raw[i] = raw[i - 1]
                if i >= 2:
                    emit(i - 1)
                continue
            samples = np.asarray(surface.vertices, dtype=np.float32)
            moved = track_vertices(codes, samples, canonical_at(models.lrm_c, canonical_planes, samples))[first]
            if flow is not None:
                flow.advance_to(int(np.rint(positions[i])))
                moved = flow.matches(surface, vertices0[first], moved)
            guesses = reject_outliers(moved, vertices0[first], neighbours, stray)
            # the previous frame's mesh slides onto this frame's surface, the canonical matches pulling on it
            failures = follower.failures
            outlines = trusted(frame_outlines(clip, positions[i], hold), np.asarray(surface.vertices),
                               np.asarray(surface.faces)) if settings.outline_weight > 0 else []
            placed = follower.step(surface, guesses, outlines)
            if follower.failures > failures:
                held.append(i)
            if settings.lay_onto_surface:  # the shipped frame, not the registration's next start
                placed = lay_onto_surface(placed, welded_faces, surface, raw[i - 1][first])
            raw[i] = placed[inverse]
            if i >= 2:
                emit(i - 1)
        maps = segment.next_maps
    if count > 1:  # a one-frame clip's only frame went out first
        emit(count - 1)
    return tracked, held


def write_gaussians(out: Path, tracked: np.ndarray, faces: np.ndarray, uvs: np.ndarray, texture: np.ndarray,
                    fps: float, settings: Settings) -> None:
    """gaussians/frame_NNNN.ply (one consistent set following the surface) and a turntable preview.mp4."""
    gaussians = SurfaceGaussians.sample(tracked[0], faces, uvs, texture, settings.gaussian_count)
    (out / "gaussians").mkdir(exist_ok=True)
    centre = tracked.reshape(-1, 3).mean(axis=0)
    radius = 2.6 * max(np.abs(tracked - centre).max() / 0.8, 1e-3)
    frames = []
    for f, vertices in enumerate(tracked):
        centres, scales = gaussians.at(vertices, faces)
        write_ply(out / "gaussians" / f"frame_{f:04d}.ply", centres, scales, gaussians.colour)
        azimuth = 2 * np.pi * f / len(tracked)
        eye = centre + radius * np.array([np.cos(azimuth) * 0.94, np.sin(azimuth) * 0.94, 0.34])
        camera = Camera.look_at(eye, centre, width=settings.preview_size, height=settings.preview_size)
        image = render_gaussians(torch.as_tensor(centres), torch.as_tensor(scales), torch.as_tensor(gaussians.colour),
                                 torch.full((len(centres),), 0.95), camera)
        frames.append((image.numpy() * 255).round().astype(np.uint8))
    write_mp4(out / "preview.mp4", np.stack(frames), fps)


def _preview(lrm, planes: list[torch.Tensor], positions: np.ndarray, clip: ClipFolder, path: Path) -> None:
    """Input view 0 (top, nearest input frame) over the reconstruction rendered from it (bottom) at up to 8 frames."""
    config = lrm.config
    camera = clip.cameras[0].resized(config.image_size, config.image_size)
    columns = np.unique(np.linspace(0, len(planes) - 1, min(8, len(planes))).round().astype(int))
    top, bottom = [], []
    for f in columns:
        image = render_triplane(lrm, planes[f], [camera])["rgb"][0].clamp(0, 1).numpy()
        bottom.append((image * 255).round().astype(np.uint8))
        top.append(np.asarray(Image.fromarray(clip.frames[0, round(positions[f])]).resize((config.image_size,) * 2)))
    Image.fromarray(np.concatenate([np.concatenate(top, 1), np.concatenate(bottom, 1)], 0)).save(path)


def is_monocular(path: Path | None) -> bool:
    """A video file or a numbered image, or a folder of images (not a clip folder with cameras.json)."""
    return path is not None and (path.is_file() or (path.is_dir() and not (path / "cameras.json").exists()))


def run(folder: Path | None, out: Path, checkpoints: Path, settings: Settings, videos: list[Path] | None = None,
        cameras_json: Path | None = None, frame_start: int = 0, frame_end: int | None = None,
        masks: list[Path | None] | None = None, elevation_deg: float | None = None, seed: int = 0,
        sequence_fps: float | None = None, view_offsets: list[int] | None = None) -> int:
    """The CLI's job: a clip folder, a monocular clip, or ``videos`` with their cameras; ``masks``: mask clips, one
    per view (None: matte that view from its footage), one for a monocular clip; image sequences play at
    ``sequence_fps``; ``view_offsets``: per view, its frames before the clip's first."""
    models = Models.load(checkpoints)  # first: a missing model is the clearer error
    monocular = is_monocular(folder)
    if videos and cameras_json is None:
        raise ValueError("--views needs --cameras (a cameras.json in the clip-folder format)")
    if view_offsets and not videos:
        raise ValueError("--offsets goes with --views (one per view); a monocular clip starts at --frame-start")
    if monocular and masks is not None and len(masks) != 1:
        raise ValueError(f"a monocular clip takes one mask clip, got {len(masks)}")
    for given in (folder, *(videos or []), *(masks or []), cameras_json):
        if given is not None and not given.exists():  # else a mistyped clip reads as "not a clip folder"
            raise ValueError(f"{given}: no such file or folder")
    for gap in sequence_gaps([folder, *(videos or []), *(masks or [])]):
        print(f"warning: {gap}", file=sys.stderr)
    bar = tqdm(desc="frames", unit="frame")

    def on_event(kind: str, value: object) -> None:
        if kind == "frame":
            bar.update(1)
        elif kind == "mesh":
            bar.total = value["frames"]
            bar.refresh()
        elif kind == "stage":
            bar.set_postfix_str(str(value))

    try:  # the bar ends its line before any error is printed
        if monocular:
            from backend.monocular import DEFAULT_ELEVATION_DEG, reconstruct_monocular

            shot_by = cameras_from_file(cameras_json)[0] if cameras_json else None
            manifest = reconstruct_monocular(folder, models, out, settings, Progress(on_event), shot_by, frame_start,
                                             frame_end, masks[0] if masks else None,
                                             DEFAULT_ELEVATION_DEG if elevation_deg is None else elevation_deg, seed,
                                             sequence_fps)
        else:
            cameras = cameras_from_file(cameras_json) if videos else None
            clip = load_clip(None if videos else folder, videos, cameras, frame_start, frame_end, masks,
                             view_side(settings.texture_size), sequence_fps, view_offsets)
            manifest = reconstruct(clip, models, out, settings, Progress(on_event))
    finally:
        bar.close()
    print(f"{manifest['vertices']} vertices, {manifest['faces']} faces, {manifest['frame_count']} frames -> {out}")
    print("stage timings (s): " + ", ".join(f"{k} {v}" for k, v in manifest["timings_s"].items()))
    return 0
