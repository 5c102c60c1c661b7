"""Train the multi-view LRM on the procedural world (`python -m backend train lrm`).

Each step: B training scenes at random times, 4 ring input views, 3 novel target views;
RGB, mask and depth losses on random rays of the novel views (and canonical coordinates when
the model has them). Resumable; `torchrun --nproc_per_node N -m backend train lrm ...` for DDP.

With ``--generated-views P``, a share P of the scenes is seen as a monocular job sees it: one true
view, and the others made by the multi-view diffusion model from it. Those views disagree with each
other at the silhouette; an LRM trained only on true views trusts every view's outline and carves
the object away (the monocular novel-view PSNR fell 11.4 -> 8.1 dB with the per-texel plane lift).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from backend.models.checkpoints import load_checkpoint, warm_start
from backend.models.config import preset
from backend.models.lrm import LRM
from backend.train.data import Views, random_cameras, render_views, stack_views, training_seed
from backend.train.losses import rendering_losses
from backend.train.run import Distributed, Objective, check_resume, load_state, run_training
from backend.world import make_object

if TYPE_CHECKING:  # diffusers is imported only by runs that generate views
    from backend.models.mvdiffusion import MultiViewDiffusion

INPUT_VIEWS, TARGET_VIEWS = 4, 3


def make_batch(step: int, rank: int, batch: int, size: int, canonical: bool,
               diffusion: MultiViewDiffusion | None = None, generated_share: float = 0.0) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng([step, rank, 7])
    inputs, targets, monocular = [], [], []
    for index in range(batch):
        obj = make_object(training_seed(rng))
        t = float(rng.uniform(0, 1))
        ring, novel = random_cameras(rng, INPUT_VIEWS, TARGET_VIEWS, size)
        generated = rng.uniform() < generated_share  # drawn always, so the scenes do not depend on the share
        if diffusion is not None and generated:
            from backend.models.mvdiffusion import generated_cameras

            ring = [ring[0], *generated_cameras(ring[0], diffusion.config.azimuths_deg)]
            monocular.append(index)
        seen = render_views(obj, ring, t)
        if canonical:
            seen.model_input = torch.cat([seen.model_input, seen.canonical.permute(0, 3, 1, 2)], dim=1)
        inputs.append(seen)
        targets.append(render_views(obj, novel, t))
    if monocular:
        generate_input_views([inputs[i] for i in monocular], diffusion, int(rng.integers(2**31)))
    batch_in = torch.stack([v.model_input for v in inputs])
    projections = torch.stack([v.projections for v in inputs])
    return {"views": batch_in, "projections": projections, **stack_views(targets)}


def generate_input_views(scenes: list[Views], diffusion: MultiViewDiffusion, seed: int) -> None:
    """Replace views 1.. of each scene (in place) by the diffusion model's views from view 0, as `bench mono` sees them."""
    from backend.models.mvdiffusion import denoise, elevation_of

    device = next(diffusion.parameters()).device
    size, lrm_size = diffusion.config.image_size, scenes[0].model_input.shape[-1]
    first = torch.stack([s.model_input[0, :3] for s in scenes])
    first = first if lrm_size == size else F.interpolate(first, size=(size, size), mode="area")
    elevations = torch.tensor([elevation_of(s.cameras[0]) for s in scenes], dtype=torch.float32)
    noise = torch.randn(len(scenes), 3 * diffusion.config.views, size, size, generator=torch.Generator().manual_seed(seed))
    made = denoise(diffusion, first.to(device) * 2 - 1, elevations.to(device), noise.to(device)).cpu()
    made = ((made + 1) / 2).view(len(scenes), diffusion.config.views, 3, size, size)
    made = (made * 255).round() / 255  # the monocular path hands the LRM 8-bit views
    if lrm_size != size:
        made = F.interpolate(made.flatten(0, 1), size=(lrm_size, lrm_size), mode="bilinear").view(len(scenes), -1, 3, lrm_size, lrm_size)
    for scene, views in zip(scenes, made, strict=True):
        scene.model_input[1:, :3] = views


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
    diffusion = None
    if args.generated_views > 0:
        if config.canonical:
            raise ValueError("--generated-views trains the monocular LRM; the canonical LRM reads true XYZ maps")
        # on the CPU: batches are made in a forked data worker, where CUDA cannot be used (slow for
        # big diffusion models on GPUs; generating on the GPU in the step is the way to lift that)
        diffusion = load_checkpoint(args.views_model, "mvdiff").eval()
        print(f"{args.generated_views:.0%} of the scenes see views generated by {args.views_model}")
    objective = env.wrap(Objective(model, lambda m, b: lrm_step(m, b, args.rays)))
    run_training(env, out, "lrm", model, optimizer, objective,
                 lambda step: make_batch(step, env.rank, args.batch, config.image_size, config.canonical,
                                        diffusion, args.generated_views), args, start, salt=3)
    return 0
