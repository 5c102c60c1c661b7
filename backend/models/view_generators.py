"""What makes the other views of a monocular keyframe: our trained model, or a user's local diffusers pipeline.

Both answer the same three questions: the image size they read, the cameras of the views they make
(given the input camera), and the views themselves for a run of keyframes.

A user's pipeline is a folder as `DiffusionPipeline.save_pretrained` writes it (Zero123++-style
models: a custom `pipeline.py` inside the folder is used, as diffusers' `custom_pipeline` does, but only
when the layout says `"trust_custom_code": true`, since it is code that runs here), plus
`lim4d_views.json`, the layout of the grid image it returns:

    {"input_size": 320, "call": {"num_inference_steps": 28},
     "grid": {"rows": 3, "cols": 2},
     "views": [{"row": 0, "col": 0, "azimuth_deg": 30, "elevation_deg": 20}, ...],
     "fov_deg": 40}

Azimuths are relative to the input camera, elevations absolute. Nothing is ever downloaded: the
folder is opened with `local_files_only`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from backend.io.cameras import Camera

LAYOUT_FILE = "lim4d_views.json"
ORBIT_RADIUS = 2.6


def orbit_camera(azimuth: float, elevation: float, size: int, fov_deg: float = 40.0) -> Camera:
    """A camera on the training orbit (radius 2.6, z up) at these angles (radians), looking at the origin."""
    eye = ORBIT_RADIUS * np.array([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth),
                                   np.sin(elevation)])
    return Camera.look_at(eye, (0.0, 0.0, 0.0), fov_deg=fov_deg, width=size, height=size)


class TrainedViews:
    """Our multi-view diffusion model (backend.models.mvdiffusion)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.image_size = model.config.image_size

    def cameras(self, camera: Camera) -> list[Camera]:
        from backend.models.mvdiffusion import generated_cameras

        return generated_cameras(camera, self.model.config.azimuths_deg)

    def generate(self, images: torch.Tensor, elevation: float, seed: int = 0) -> torch.Tensor:
        from backend.models.mvdiffusion import generate_views

        return generate_views(self.model, images, elevation, seed)


@dataclass
class GridView:
    row: int
    col: int
    azimuth_deg: float
    elevation_deg: float


class LocalPipelineViews:
    """A user's diffusers pipeline folder and its grid layout."""

    def __init__(self, folder: str | Path, device: str = "cpu") -> None:
        self.folder = Path(folder)
        self.layout = read_layout(self.folder)
        self.image_size = int(self.layout["input_size"])
        self.views = [GridView(**v) for v in self.layout["views"]]
        self.fov_deg = float(self.layout.get("fov_deg", 40.0))
        from diffusers import DiffusionPipeline

        options: dict[str, Any] = {"local_files_only": True}
        if (self.folder / "pipeline.py").is_file():
            if not self.layout.get("trust_custom_code"):
                raise ValueError(f"{self.folder}: has a pipeline.py (code that would run here); set "
                                 f'"trust_custom_code": true in {LAYOUT_FILE} if you trust it')
            options.update(custom_pipeline=str(self.folder), trust_remote_code=True)
        try:
            self.pipeline = DiffusionPipeline.from_pretrained(str(self.folder), **options).to(device)
        except (OSError, ValueError, ImportError, AttributeError) as error:
            raise ValueError(f"{self.folder}: not a loadable diffusers pipeline folder ({error})") from None

    def cameras(self, camera: Camera) -> list[Camera]:
        centre = camera.center
        azimuth = float(np.arctan2(centre[1], centre[0]))
        return [orbit_camera(azimuth + np.radians(v.azimuth_deg), np.radians(v.elevation_deg), camera.width, self.fov_deg)
                for v in self.views]

    def generate(self, images: torch.Tensor, elevation: float, seed: int = 0) -> torch.Tensor:
        """(K, 3, H, W) in [0, 1] -> (K, V, 3, H, W): one pipeline call per keyframe, the same seed for each."""
        from PIL import Image

        rows, cols = self.layout["grid"]["rows"], self.layout["grid"]["cols"]
        out = []
        for image in images:
            picture = Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
            generator = torch.Generator("cpu").manual_seed(seed)
            grid = self.pipeline(picture, generator=generator, **self.layout.get("call", {})).images[0]
            grid = torch.as_tensor(np.array(grid.convert("RGB"))).float().permute(2, 0, 1) / 255
            h, w = grid.shape[1] // rows, grid.shape[2] // cols
            tiles = [grid[:, v.row * h:(v.row + 1) * h, v.col * w:(v.col + 1) * w] for v in self.views]
            out.append(F.interpolate(torch.stack(tiles), size=(images.shape[-2], images.shape[-1]), mode="area"))
        return torch.stack(out)


def read_layout(folder: Path) -> dict[str, Any]:
    path = folder / LAYOUT_FILE
    try:
        layout = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{folder}: no {LAYOUT_FILE} (the layout of the views in the pipeline's output grid)") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    missing = [k for k in ("input_size", "grid", "views") if k not in layout]
    if missing:
        raise ValueError(f"{path}: missing {', '.join(missing)}")
    try:
        rows, cols = int(layout["grid"]["rows"]), int(layout["grid"]["cols"])
        for view in layout["views"]:
            GridView(**view)
            if not (0 <= view["row"] < rows and 0 <= view["col"] < cols):
                raise ValueError(f"{path}: view {view} lies outside the {rows}x{cols} grid")
    except (KeyError, TypeError) as error:
        raise ValueError(f"{path}: a grid needs rows and cols, a view row, col, azimuth_deg, elevation_deg ({error})") from None
    return layout


def load_view_generator(folder: Path, device: str = "cpu"):
    """A checkpoint folder of ours (config.json + model.safetensors) or a user's pipeline folder with a layout."""
    if (folder / LAYOUT_FILE).is_file():
        return LocalPipelineViews(folder, device)
    from backend.models.checkpoints import load_checkpoint

    return TrainedViews(load_checkpoint(folder, "mvdiff", device))
