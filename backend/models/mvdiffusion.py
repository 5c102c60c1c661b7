"""Multi-view diffusion: one input view of a keyframe -> V more views at fixed relative poses.

A diffusers `UNet2DConditionModel` denoises the V generated views stacked as channels (every view
sees every other through the convolutions and attention, so they agree), conditioned two ways:
- concatenated channels: the input view, the previous keyframe's generated views (zeros and a
  0 flag at the first keyframe) — that, and one shared starting noise for every keyframe, keeps
  the generated views consistent through time;
- cross-attention tokens (at the coarsest levels): the input view's patches with their positions, and the input camera's
  elevation (the generated cameras share it: same radius and elevation, azimuth +90°, +180°, +270°
  for the tiny config), so the LRM gets the ring of views it was trained on.
Sampling is DDIM (v-prediction, trailing timesteps, zero terminal SNR) from diffusers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DConditionModel
from torch import nn

from backend.io.cameras import Camera
from backend.models.blocks import patchify
from backend.models.config import config_from_dict


@dataclass(frozen=True)
class DiffusionConfig:
    image_size: int = 64
    azimuths_deg: tuple[float, ...] = (90.0, 180.0, 270.0)  # generated views, relative to the input camera
    block_channels: tuple[int, ...] = (32, 64, 128)
    layers_per_block: int = 1
    attention_levels: int = 1  # the lowest-resolution levels with attention (self + cross)
    attention_heads: int = 16
    token_dim: int = 64  # cross-attention width
    condition_patch: int = 8
    train_timesteps: int = 1000
    sample_steps: int = 20

    @property
    def views(self) -> int:
        return len(self.azimuths_deg)

    @property
    def token_features(self) -> int:
        """Per condition token: patch pixels, patch centre (x, y), sin and cos of the elevation."""
        return 3 * self.condition_patch**2 + 4

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> DiffusionConfig:
        return config_from_dict(DiffusionConfig, data)


PRESETS: dict[str, DiffusionConfig] = {
    "tiny": DiffusionConfig(),
    # six views on one ring at 256² for GPUs (Zero123++/SV3D-class widths)
    "base": DiffusionConfig(image_size=256, azimuths_deg=(60.0, 120.0, 180.0, 240.0, 300.0),
                            block_channels=(128, 256, 512, 512), layers_per_block=2, attention_levels=3, attention_heads=8,
                            token_dim=512, condition_patch=16, sample_steps=30),
}


def preset(name: str) -> DiffusionConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown diffusion config {name!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[name]


class MultiViewDiffusion(nn.Module):
    def __init__(self, config: DiffusionConfig) -> None:
        super().__init__()
        self.config = config
        v = config.views
        plain = len(config.block_channels) - config.attention_levels
        self.unet = UNet2DConditionModel(
            sample_size=config.image_size,
            in_channels=3 * v + 3 + 3 * v + 1,  # noisy views, input view, previous views, previous flag
            out_channels=3 * v,
            down_block_types=("DownBlock2D",) * plain + ("CrossAttnDownBlock2D",) * config.attention_levels,
            up_block_types=("CrossAttnUpBlock2D",) * config.attention_levels + ("UpBlock2D",) * plain,
            block_out_channels=config.block_channels,
            layers_per_block=config.layers_per_block,
            cross_attention_dim=config.token_dim,
            encoder_hid_dim=config.token_features,
            encoder_hid_dim_type="text_proj",
            # diffusers' UNet2DConditionModel reads attention_head_dim as the number of heads (a known
            # naming quirk; it refuses num_attention_heads), so the head count goes in under that name
            attention_head_dim=config.attention_heads,
            norm_num_groups=min(32, config.block_channels[0] // 2),
        )

    def condition_tokens(self, image: torch.Tensor, elevation: torch.Tensor) -> torch.Tensor:
        """(B, N + 1, token_features): input patches with their centres, and an elevation token."""
        b, _, size, _ = image.shape
        p = self.config.condition_patch
        patches = patchify(image[:, None], p)  # (B, N, 3·p²)
        side = size // p
        centres = (torch.arange(side, device=image.device, dtype=image.dtype) + 0.5) / side * 2 - 1
        yy, xx = torch.meshgrid(centres, centres, indexing="ij")
        position = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1).expand(b, -1, -1)
        zeros = torch.zeros(b, patches.shape[1], 2, device=image.device, dtype=image.dtype)
        tokens = torch.cat([patches, position, zeros], dim=2)
        angle = torch.stack([torch.sin(elevation), torch.cos(elevation)], dim=1).to(image.dtype)
        camera = torch.cat([torch.zeros(b, tokens.shape[2] - 2, device=image.device, dtype=image.dtype), angle], dim=1)
        return torch.cat([tokens, camera[:, None]], dim=1)

    def forward(self, noisy: torch.Tensor, timesteps: torch.Tensor, image: torch.Tensor, previous: torch.Tensor,
                has_previous: torch.Tensor, elevation: torch.Tensor) -> torch.Tensor:
        """All images in [-1, 1]: noisy (B, 3V, H, W), image (B, 3, H, W), previous (B, 3V, H, W).

        has_previous (B,) 0/1, elevation (B,) radians. Returns the v-prediction (B, 3V, H, W).
        """
        b, _, h, w = noisy.shape
        flag = has_previous.to(noisy.dtype).view(b, 1, 1, 1).expand(b, 1, h, w)
        previous = previous * flag
        x = torch.cat([noisy, image, previous, flag], dim=1)
        return self.unet(x, timesteps, encoder_hidden_states=self.condition_tokens(image, elevation)).sample


def training_scheduler(config: DiffusionConfig) -> DDPMScheduler:
    return DDPMScheduler(num_train_timesteps=config.train_timesteps, beta_schedule="squaredcos_cap_v2",
                         prediction_type="v_prediction", rescale_betas_zero_snr=True, clip_sample=False)


def sampling_scheduler(config: DiffusionConfig) -> DDIMScheduler:
    return DDIMScheduler(num_train_timesteps=config.train_timesteps, beta_schedule="squaredcos_cap_v2",
                         prediction_type="v_prediction", rescale_betas_zero_snr=True, clip_sample=True,
                         timestep_spacing="trailing", set_alpha_to_one=True)


def elevation_of(camera: Camera, target: np.ndarray | None = None) -> float:
    """Elevation (radians) of the camera centre seen from the target (world z is up)."""
    offset = camera.center - (np.zeros(3) if target is None else target)
    return float(np.arctan2(offset[2], np.linalg.norm(offset[:2])))


def generated_cameras(camera: Camera, azimuths_deg: tuple[float, ...]) -> list[Camera]:
    """The input camera turned about the world z axis through the origin by each azimuth."""
    out = []
    for degrees in azimuths_deg:
        angle = np.radians(degrees)
        turn = np.eye(4)
        turn[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
        out.append(Camera(camera.K, camera.world_to_camera @ np.linalg.inv(turn), camera.width, camera.height))
    return out


@torch.no_grad()
def denoise(model: MultiViewDiffusion, images: torch.Tensor, elevations: torch.Tensor, noise: torch.Tensor,
            previous: torch.Tensor | None = None, steps: int | None = None) -> torch.Tensor:
    """DDIM from ``noise`` (B, 3V, H, W) for a batch of input views (B, 3, H, W) in [-1, 1] -> views in [-1, 1].

    elevations (B,) radians; previous (B, 3V, H, W) the previous keyframe's views, or None for none.
    """
    scheduler = sampling_scheduler(model.config)
    scheduler.set_timesteps(steps or model.config.sample_steps)
    has_previous = torch.full((images.shape[0],), float(previous is not None), device=images.device)
    previous = torch.zeros_like(noise) if previous is None else previous
    x = noise
    for t in scheduler.timesteps:
        prediction = model(x, t.expand(images.shape[0]).to(images.device), images, previous, has_previous, elevations)
        x = scheduler.step(prediction, t, x).prev_sample
    return x.clamp(-1, 1)


@torch.no_grad()
def generate_views(model: MultiViewDiffusion, images: torch.Tensor, elevation: float, seed: int = 0,
                   steps: int | None = None, progress: Any = None) -> torch.Tensor:
    """Keyframe input views (K, 3, H, W) in [0, 1] -> generated views (K, V, 3, H, W) in [0, 1].

    Keyframes are sampled in order, each conditioned on the previous one's views, all from one
    shared starting noise, so the views stay consistent through time. Deterministic under ``seed``.
    """
    config = model.config
    device = next(model.parameters()).device
    keyframes, v, size = images.shape[0], config.views, config.image_size
    generator = torch.Generator("cpu").manual_seed(seed)
    shared_noise = torch.randn(1, 3 * v, size, size, generator=generator).to(device)
    tilt = torch.tensor([elevation], device=device)
    previous, outputs = None, []
    for index in range(keyframes):
        image = images[index: index + 1].to(device) * 2 - 1
        previous = denoise(model, image, tilt, shared_noise.clone(), previous, steps)
        outputs.append((previous[0].view(v, 3, size, size) + 1) / 2)
        if progress is not None:
            progress(index + 1, keyframes)
    return torch.stack(outputs).cpu()
