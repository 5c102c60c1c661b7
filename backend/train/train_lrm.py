"""Train the multi-view LRM on the procedural world (`python -m backend train lrm`).

Each step: B training scenes at random times, 4 ring input views, 3 novel target views;
RGB, mask and depth losses on random rays of the novel views (and canonical coordinates when
the model has them). Resumable; `torchrun --nproc_per_node N -m backend train lrm ...` for DDP.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from backend.models.config import preset
from backend.models.lrm import LRM
from backend.train.data import random_cameras, render_views, stack_views, training_seed
from backend.train.losses import rendering_losses, weighted_total
from backend.train.run import (
    Distributed,
    LossLog,
    Objective,
    check_resume,
    learning_rate,
    load_state,
    save_state,
    seed_step,
)
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
    saved_args = {k: v for k, v in vars(args).items() if k != "handler"}
    if args.resume and (out / "state.json").exists():
        check_resume(out, saved_args)
        model, optimizer, start = load_state(out, "lrm", optimizer_for, env.device)
        config = model.config
        print(f"resuming {out} at step {start}")
    else:
        torch.manual_seed(0)
        model = LRM(config).to(env.device)
        optimizer, start = optimizer_for(model), 0
    objective = env.wrap(Objective(model, lambda m, b: lrm_step(m, b, args.rays)))
    log = LossLog(out)
    if env.main:
        log.truncate_after(start)
    started = time.perf_counter()
    for step in range(start, args.steps):
        seed_step(step, env.rank, 3)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args.lr, args.warmup, args.steps)
        batch = {k: v.to(env.device) for k, v in make_batch(step, env.rank, args.batch, config.image_size, config.canonical).items()}
        with env.autocast():
            losses = objective(batch)
            total = weighted_total(losses)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if env.main and (step + 1) % args.log_every == 0:
            values = {"total": total.item(), **{k: v.item() for k, v in losses.items()},
                      "lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - started}
            log.append(step + 1, values)
            print(f"step {step + 1}: " + " ".join(f"{k} {v:.4g}" for k, v in values.items()), flush=True)
        if env.main and ((step + 1) % args.save_every == 0 or step + 1 == args.steps):
            save_state(out, model, "lrm", optimizer, step + 1, saved_args)
            log.plot()
    env.close()
    return 0
