"""Train the multi-view LRM on the procedural world (`python -m backend train lrm`).

Each step: B training scenes at random times, 4 ring input views, 3 novel target views;
RGB, mask and depth losses on random rays of the novel views (and canonical coordinates when
the model has them). Resumable; `torchrun --nproc_per_node N -m backend train lrm ...` for DDP.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from backend.models.checkpoints import warm_start
from backend.models.config import preset
from backend.models.lrm import LRM
from backend.train.data import random_cameras, render_views, stack_views, training_seed
from backend.train.losses import rendering_losses
from backend.train.run import Distributed, Objective, check_resume, load_state, run_training
from backend.world import make_object

INPUT_VIEWS, TARGET_VIEWS = 4, 3


def make_batch(step: int, rank: int, batch: int, size: int, canonical: bool) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng([step, rank, 7])
    inputs, targets = [], []
    for _ in range(batch):
        obj = make_object(training_seed(rng))
        t = float(rng.uniform(0, 1))
        ring, novel = random_cameras(rng, INPUT_VIEWS, TARGET_VIEWS, size)
        seen = render_views(obj, ring, t)
        if canonical:
            seen.model_input = torch.cat([seen.model_input, seen.canonical.permute(0, 3, 1, 2)], dim=1)
        inputs.append(seen)
        targets.append(render_views(obj, novel, t))
    batch_in = torch.stack([v.model_input for v in inputs])
    projections = torch.stack([v.projections for v in inputs])
    return {"views": batch_in, "projections": projections, **stack_views(targets)}


def optimizer_for(model: torch.nn.Module, lr: float = 4e-4) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.05)


def lrm_step(model: LRM, batch: dict[str, torch.Tensor], rays: int) -> dict[str, torch.Tensor]:
    out = model(batch["views"], batch["projections"])
    return rendering_losses(lambda pts: model.decoder(out.planes, pts), batch, model.config, rays)


def main(args: argparse.Namespace) -> int:
    env = Distributed(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = preset(args.config)
    if args.target == "canonical":
        config = config.with_canonical()
    if args.resume and (out / "state.json").exists():
        check_resume(out, args)
        model, optimizer, start = load_state(out, "lrm", optimizer_for, env.device)
        config = model.config
        print(f"resuming {out} at step {start}")
    else:
        torch.manual_seed(0)
        model = LRM(config)
        if args.init:
            fresh = warm_start(model, args.init, "lrm")
            print(f"warm start from {args.init}; fresh: {', '.join(fresh) or 'none'}")
        model = model.to(env.device)
        optimizer, start = optimizer_for(model), 0
    objective = env.wrap(Objective(model, lambda m, b: lrm_step(m, b, args.rays)))
    run_training(env, out, "lrm", model, optimizer, objective,
                 lambda step: make_batch(step, env.rank, args.batch, config.image_size, config.canonical), args, start, salt=3)
    return 0
