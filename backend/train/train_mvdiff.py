"""Train the multi-view diffusion model on the procedural world (`python -m backend train mvdiff`).

Each sample: a training object at keyframe time t₁ seen by one random ring camera (the input
view) and by that camera turned by the config's azimuths (the views to generate); the same
cameras at an earlier keyframe t₀ give the previous keyframe's views, noised a little because at
inference they are the model's own samples, and dropped 30 % of the time (the first keyframe).
Loss: v-prediction MSE at uniform random timesteps. The weights' moving average is kept in OUT/ema (export
that one). Resumable; torchrun-ready.
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from backend.io.cameras import ring_cameras
from backend.models.checkpoints import load_checkpoint
from backend.models.mvdiffusion import MultiViewDiffusion, elevation_of, generated_cameras, preset, training_scheduler
from backend.train.data import training_seed
from backend.train.run import Distributed, Objective, check_resume, load_state, run_training
from backend.world import make_object
from backend.world.render import render_clip

FIRST_KEYFRAME_SHARE = 0.3  # samples without a previous keyframe
PREVIOUS_NOISE = 0.15  # largest std of the noise on the previous views ([-1, 1] units)
EMA_DECAY = 0.998  # the shipped weights are this average (OUT/ema), not the last step's


def make_batch(step: int, rank: int, batch: int, config_name: str) -> dict[str, torch.Tensor]:
    config = preset(config_name)
    rng = np.random.default_rng([step, rank, 11])
    size, views = config.image_size, config.views
    images, targets, previous, has_previous, elevations = [], [], [], [], []
    for _ in range(batch):
        obj = make_object(training_seed(rng))
        t1 = float(rng.uniform(0, 1))
        t0 = max(0.0, t1 - float(rng.uniform(0.05, 0.25)))
        camera = ring_cameras(1, rng, size=size)[0]
        render = render_clip(obj, [camera, *generated_cameras(camera, config.azimuths_deg)], np.array([t0, t1]))
        rgb = torch.as_tensor(render.composite()).float().permute(0, 1, 4, 2, 3) / 127.5 - 1  # (1+V, 2, 3, H, W)
        images.append(rgb[0, 1])
        targets.append(rgb[1:, 1].reshape(3 * views, size, size))
        noise = torch.as_tensor(rng.normal(0, rng.uniform(0, PREVIOUS_NOISE), (3 * views, size, size))).float()
        previous.append(rgb[1:, 0].reshape(3 * views, size, size) + noise)
        has_previous.append(float(rng.uniform() > FIRST_KEYFRAME_SHARE))
        elevations.append(elevation_of(camera))
    return {"image": torch.stack(images), "target": torch.stack(targets), "previous": torch.stack(previous),
            "has_previous": torch.tensor(has_previous), "elevation": torch.tensor(elevations, dtype=torch.float32)}


def diffusion_step(model: MultiViewDiffusion, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    scheduler = training_scheduler(model.config)
    clean = batch["target"]
    noise = torch.randn_like(clean)
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (clean.shape[0],), device=clean.device)
    noisy = scheduler.add_noise(clean, noise, timesteps)
    prediction = model(noisy, timesteps, batch["image"], batch["previous"], batch["has_previous"], batch["elevation"])
    return {"v": F.mse_loss(prediction.float(), scheduler.get_velocity(clean, noise, timesteps).float())}


def optimizer_for(model: torch.nn.Module, lr: float = 2e-4) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.01)


def main(args: argparse.Namespace) -> int:
    env = Distributed(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.resume and (out / "state.json").exists():
        check_resume(out, args)
        model, optimizer, start = load_state(out, "mvdiff", optimizer_for, env.device)
        print(f"resuming {out} at step {start}")
    else:
        torch.manual_seed(0)
        model = MultiViewDiffusion(preset(args.config))
        if args.init:  # continue a finished run with a new schedule: the same config, its weights
            source = load_checkpoint(args.init, "mvdiff")
            if source.config != model.config:
                raise ValueError(f"{args.init}: its config differs from --config {args.config}; warm starts need the same one")
            model.load_state_dict(source.state_dict())
            print(f"warm start from {args.init}")
        model = model.to(env.device)
        optimizer, start = optimizer_for(model), 0
    objective = env.wrap(Objective(model, diffusion_step))
    batches = partial(make_batch, rank=env.rank, batch=args.batch, config_name=args.config)
    run_training(env, out, "mvdiff", model, optimizer, objective, batches, args, start, salt=5, ema_decay=EMA_DECAY,
                 prefetch=1)
    return 0
