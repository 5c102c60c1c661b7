"""Train LIM with the LRM frozen (`python -m backend train lim`).

Each step, per scene: keyframes k and k+1 a gap of 2-4 frames apart (32-frame clips, so a
frame is 1/31 of the motion), an intermediate time k+α with α ~ U(0, 1], all seen by the same
4 ring cameras, plus 2 novel cameras at k+α. Losses:
  L_T      = ‖T̂(k+α) − LRM(I_{k+α})‖²   (LRM triplane at the true intermediate views as pseudo ground truth)
  L_causal = ‖LIM(F̂(k+α_r), I_{k+1}, (α−α_r)/(1−α_r)) − T̂(k+α)‖²,  α_r ~ U(0, α)   (unless --no-causal)
  rendering losses of T̂(k+α) on the novel views.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from backend.models.checkpoints import load_checkpoint, warm_start
from backend.models.lim import LIM
from backend.models.view_flow import views_between
from backend.train.data import random_cameras, render_views, stack_views, training_seed
from backend.train.losses import causal_consistency, rendering_losses
from backend.train.run import Distributed, Objective, check_resume, load_state, run_training
from backend.world import make_object

INPUT_VIEWS, TARGET_VIEWS = 4, 2
FRAME = 1.0 / 31  # one frame of a 32-frame clip spanning t in [0, 1]
GAPS = (2, 3, 4)


def make_batch(step: int, rank: int, batch: int, size: int, canonical: bool = False) -> dict[str, torch.Tensor]:
    """With ``canonical`` (training LIM‾ on LRM‾): keyframe k and the pseudo-truth views carry their
    ground-truth canonical maps; keyframe k+1 carries zeros, as it will at inference."""
    rng = np.random.default_rng([step, rank, 11])
    keyed: dict[str, list[torch.Tensor]] = {"views_k": [], "views_next": [], "views_mid": [], "interp_alpha": [],
                                            "projections": []}
    if not canonical:
        keyed["views_flowed"] = []
    targets = []
    for _ in range(batch):
        obj = make_object(training_seed(rng))
        gap = int(rng.choice(GAPS)) * FRAME
        t_k = float(rng.uniform(0, 1 - gap))
        alpha = float(rng.uniform(0.05, 1.0))
        ring, novel = random_cameras(rng, INPUT_VIEWS, TARGET_VIEWS, size)
        first = render_views(obj, ring, t_k)
        keyed["projections"].append(first.projections)
        keyed["views_k"].append(_model_input(first, canonical, known=True))
        following = render_views(obj, ring, t_k + gap)
        keyed["views_next"].append(_model_input(following, canonical, known=False))
        if not canonical:  # the flow runs on the CPU: here, in the data workers, not in the model's step
            keyed["views_flowed"].append(views_between(first.model_input[:, :3], following.model_input[:, :3],
                                                       torch.tensor([alpha]))[0])
        keyed["views_mid"].append(_model_input(render_views(obj, ring, t_k + alpha * gap), canonical, known=True))
        keyed["interp_alpha"].append(torch.tensor(alpha))
        targets.append(render_views(obj, novel, t_k + alpha * gap))
    targets_batch = stack_views(targets)
    assert not set(keyed) & set(targets_batch), "batch keys must not collide"
    return {**{k: torch.stack(v) for k, v in keyed.items()}, **targets_batch}


def _model_input(views, canonical: bool, known: bool) -> torch.Tensor:
    if not canonical:
        return views.model_input
    maps = views.canonical.permute(0, 3, 1, 2)
    return torch.cat([views.model_input, maps if known else torch.zeros_like(maps)], dim=1)


def optimizer_for(model: torch.nn.Module, lr: float = 2e-4) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.05)


def lifted_between_keyframes(lrm: torch.nn.Module, batch: dict[str, torch.Tensor], start, following) -> torch.Tensor | None:
    """The plane lift at k+α as inference makes it (`lifted_along_flow`): the keyframes' views moved along
    optical flow (made with the batch), when both keyframes are known; else (the canonical chain) keyframe k's."""
    if following is None or lrm.plane_lift is None:
        return lrm.lifted_between(start, following, batch["interp_alpha"])
    return lrm.plane_lift(batch["views_flowed"], batch["projections"])


def lim_step(lim: torch.nn.Module, lrm: torch.nn.Module, batch: dict[str, torch.Tensor], rays: int,
             causal: bool) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        start = lrm(batch["views_k"], batch["projections"])
        following = None if lrm.config.canonical else lrm(batch["views_next"], batch["projections"])
        end = None if following is None else following.tokens
        pseudo_truth = lrm(batch["views_mid"], batch["projections"]).planes
    hop = lim(start.tokens, start.features, batch["views_next"], batch["interp_alpha"], end)
    lifted = lifted_between_keyframes(lrm, batch, start, following)
    planes = lrm.tokens_to_planes(hop.tokens, lifted)
    losses = {"triplane": F.mse_loss(planes, pseudo_truth)}
    if causal:
        alpha_r = torch.rand_like(batch["interp_alpha"]) * batch["interp_alpha"]
        losses["causal"] = causal_consistency(
            lambda state, views, a: lim(state.tokens, state.features, views, a, end),
            start, batch["views_next"], batch["interp_alpha"], alpha_r,
            lambda state: lrm.tokens_to_planes(state.tokens, lifted), planes,
        )
    losses.update(rendering_losses(lambda pts: lrm.decoder(planes, pts), batch, lrm.config, rays))
    return losses


def main(args: argparse.Namespace) -> int:
    env = Distributed(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lrm = load_checkpoint(args.lrm, "lrm", env.device)
    lrm.requires_grad_(False)
    if args.resume and (out / "state.json").exists():
        check_resume(out, args)
        lim, optimizer, start = load_state(out, "lim", optimizer_for, env.device)
        print(f"resuming {out} at step {start}")
    else:
        lim = LIM.from_lrm(lrm)
        if args.init:
            fresh = warm_start(lim, args.init, "lim")
            print(f"warm start from {args.init}; fresh: {', '.join(fresh) or 'none'}")
        lim = lim.to(env.device).train()
        optimizer, start = optimizer_for(lim), 0
    causal = not args.no_causal
    objective = env.wrap(Objective(lim, lambda m, b: lim_step(m, lrm, b, args.rays, causal)))
    size, canonical = lrm.config.image_size, lrm.config.canonical
    run_training(env, out, "lim", lim, optimizer, objective,
                 lambda step: make_batch(step, env.rank, args.batch, size, canonical), args, start, salt=5)
    return 0
