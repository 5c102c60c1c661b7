"""What every training run shares: devices and DDP, resumable state, the loss curve.

State in OUT/: model/ (config.json + model.safetensors, fp32), optimizer.safetensors,
state.json (step, arguments), loss.csv and loss.png. `--resume` continues from there.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import nn

from backend.models.checkpoints import load_checkpoint, save_checkpoint


class Distributed:
    """Single process, or one rank of a `torchrun` job (DDP; NCCL on GPUs, Gloo on CPUs)."""

    def __init__(self, device: str | None = None) -> None:
        self.rank = int(os.environ.get("RANK", 0))
        self.world = int(os.environ.get("WORLD_SIZE", 1))
        local = int(os.environ.get("LOCAL_RANK", 0))
        cuda = torch.cuda.is_available() and device != "cpu"
        self.device = torch.device(f"cuda:{local}" if cuda else "cpu")
        if self.world > 1:
            dist.init_process_group("nccl" if cuda else "gloo")
        if cuda:
            torch.cuda.set_device(self.device)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def wrap(self, model: nn.Module) -> nn.Module:
        if self.world == 1:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def close(self) -> None:
        if self.world > 1:
            dist.destroy_process_group()


class Objective(nn.Module):
    """A whole training step's forward (model calls, rendering, losses) as one module call.

    DDP needs every use of the parameters inside the wrapped module's forward: the decoder used by
    the renderer, and LIM called for several hops, would otherwise be outside it.
    """

    def __init__(self, model: nn.Module, step: Any) -> None:
        super().__init__()
        self.model = model
        self.step = step

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.step(self.model, batch)


def learning_rate(step: int, peak: float, warmup: int, total: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def save_state(out: Path, model: nn.Module, kind: str, optimizer: torch.optim.Optimizer, step: int, args: dict[str, Any]) -> None:
    save_checkpoint(model, out / "model", kind, extra={"step": step})
    state = optimizer.state_dict()
    tensors = {f"{index}.{key}": value.contiguous() for index, slot in state["state"].items() for key, value in slot.items()}
    save_file(tensors, str(out / "optimizer.safetensors.tmp"))
    (out / "optimizer.safetensors.tmp").replace(out / "optimizer.safetensors")
    (out / "state.json").write_text(json.dumps({"step": step, "args": args, "param_groups": state["param_groups"]}, indent=1))


def load_state(out: Path, kind: str, optimizer_for: Any, device: torch.device) -> tuple[nn.Module, torch.optim.Optimizer, int]:
    """Model, optimizer (built by ``optimizer_for(model)``) and the step to continue from."""
    model = load_checkpoint(out / "model", kind, device).train()
    optimizer = optimizer_for(model)
    meta = json.loads((out / "state.json").read_text())
    tensors = load_file(str(out / "optimizer.safetensors"), device=str(device))
    slots: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        slots.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": slots, "param_groups": meta["param_groups"]})
    return model, optimizer, int(meta["step"])


class _StepBatches(torch.utils.data.Dataset):
    def __init__(self, make: Any) -> None:
        self.make = make

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        return {**self.make(step), "step": torch.tensor(step)}


def _one_thread(_: int) -> None:
    """Each data worker renders on one core: many workers, each threading over all cores, thrash."""
    torch.set_num_threads(1)


@contextlib.contextmanager
def _opencv_single_threaded() -> Any:
    """OpenCV (the optical flow of LIM's batches) at one thread while the workers fork: set in a forked child,
    it waits forever on the parent's thread pool, so the children inherit the setting instead."""
    try:
        import cv2
    except ImportError:
        yield
        return
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(threads)


class Prefetched:
    """``make(step)`` run by a worker process a few steps ahead, so rendering overlaps the model's step.

    Batches are still a function of the step alone, so a resumed run sees the same data.
    """

    def __init__(self, make: Any, start: int, steps: int, workers: int = 1) -> None:
        loader = torch.utils.data.DataLoader(_StepBatches(make), sampler=range(start, steps), batch_size=None,
                                             num_workers=workers, prefetch_factor=2, worker_init_fn=_one_thread)
        with _opencv_single_threaded():
            self.batches = iter(loader)  # the workers fork here
        self.next_step = start

    def __call__(self, step: int) -> dict[str, torch.Tensor]:
        if step != self.next_step:
            raise RuntimeError(f"batches are prefetched in order: asked for step {step}, next is {self.next_step}")
        self.next_step += 1
        batch = next(self.batches)
        made_for = int(batch.pop("step"))
        if made_for != step:
            raise RuntimeError(f"the loader produced the batch of step {made_for} for step {step}")
        return batch


# settings that define what a run trains; a resumed run must keep them
FIXED_ON_RESUME = ("target", "config", "lrm", "no_causal", "causal_weight", "generated_views", "data_offset")


def run_arguments(args: Any) -> dict[str, Any]:
    """The command-line settings of a run, as stored in state.json."""
    return {k: v for k, v in vars(args).items() if k != "handler"}


def check_resume(out: Path, args: Any) -> None:
    """Refuse to resume a run with settings that would change what it trains."""
    args = run_arguments(args)
    saved = json.loads((out / "state.json").read_text()).get("args", {})
    changed = [f"{k}: {saved[k]!r} -> {args.get(k)!r}" for k in FIXED_ON_RESUME if k in saved and saved[k] != args.get(k)]
    if changed:
        raise ValueError(f"{out} was trained with other settings; start a new --out or keep them ({'; '.join(changed)})")


def seed_step(step: int, rank: int, salt: int) -> None:
    """Seed torch's generator from (step, rank): rays, jitter and α_r replay exactly after a resume."""
    torch.manual_seed((step * 7919 + rank) * 104729 + salt)


class AveragedWeights:
    """An exponential moving average of a model's weights (diffusion samples come out much cleaner from it).

    Kept in OUT/ema/ as a checkpoint folder of its own; a resumed run continues it.
    """

    def __init__(self, model: nn.Module, out: Path, kind: str, decay: float, start: int) -> None:
        self.decay, self.folder, self.kind = decay, out / "ema", kind
        saved = self.folder / "config.json"
        if start > 0 and saved.is_file() and json.loads(saved.read_text()).get("step") == start:
            self.model = load_checkpoint(self.folder, kind, next(model.parameters()).device)
        else:  # a fresh run, or an average that does not belong to this state: start from the model
            self.model = copy.deepcopy(model).eval()
        self.model.requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        # warm-up: early on the average follows quickly, so it never carries much of the initial weights
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for average, current in zip(self.model.parameters(), model.parameters(), strict=True):
            average.lerp_(current.detach(), 1 - decay)

    def save(self, step: int) -> None:
        save_checkpoint(self.model, self.folder, self.kind, extra={"step": step, "ema_decay": self.decay})


def run_training(env: Distributed, out: Path, kind: str, model: nn.Module, optimizer: torch.optim.Optimizer,
                 objective: nn.Module, batch_for_step: Any, args: Any, start: int, salt: int,
                 ema_decay: float | None = None, prefetch: int = 0) -> None:
    """The loop the trainers share: schedule, step, clip, log, save (rank 0), from ``start`` to ``args.steps``;
    with ``ema_decay``, also an average of the weights (OUT/ema). Batches are made in ``--workers`` processes
    (at least ``prefetch``), else inline."""
    from backend.train.losses import weighted_total

    saved_args = run_arguments(args)
    average = AveragedWeights(model, out, kind, ema_decay, start) if ema_decay and env.main else None
    log = LossLog(out)
    if env.main:
        log.truncate_after(start)
    started = time.perf_counter()
    # a warm-started run draws its scenes from further along the seed stream, not the ones its start saw
    offset = getattr(args, "data_offset", 0)
    workers = max(getattr(args, "workers", 0), prefetch)
    if workers > 0:  # a GPU outpaces one core rendering scenes: render them in workers, a few steps ahead
        batch_for_step = Prefetched(batch_for_step, start + offset, args.steps + offset, workers)
    plan = StepsForBudget(getattr(args, "minutes", None), start)
    weights = {"causal": args.causal_weight} if getattr(args, "causal_weight", None) is not None else None
    ceiling, announced = args.steps, 0  # --steps stays the most a budget may plan
    step = start
    while step < args.steps:
        seed_step(step + offset, env.rank, salt)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args.lr, args.warmup, args.steps)
        batch = {k: v.to(env.device) for k, v in batch_for_step(step + offset).items()}
        with env.autocast():
            losses = objective(batch)
            total = weighted_total(losses, weights)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if average is not None:
            average.update(model)
        if env.main and (step + 1) % args.log_every == 0:
            values = {"total": total.item(), **{k: v.item() for k, v in losses.items()},
                      "lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - started}
            log.append(step + 1, values)
            print(f"step {step + 1}: " + " ".join(f"{k} {v:.4g}" for k, v in values.items()), flush=True)
        if env.main and ((step + 1) % args.save_every == 0 or step + 1 == args.steps):
            if average is not None:  # before state.json: a state never points at an older average
                average.save(step + 1)
            save_state(out, model, kind, optimizer, step + 1, saved_args)
            log.plot()
        step += 1
        planned = plan.steps_after(step, env)
        if planned is not None:
            args.steps = saved_args["steps"] = min(planned, ceiling)
            if env.main and abs(args.steps - announced) * 20 > args.steps:  # say so when the plan moves 5 %
                announced = args.steps
                print(f"--minutes {args.minutes}: {args.steps} steps in all (at step {step})", flush=True)
    env.close()


class StepsForBudget:
    """``--minutes``: how many steps fit the time budget, from the speed of recent steps, so the
    learning-rate schedule still ends in its cosine (a lent GPU is lent for minutes, not steps).

    The first plan comes after SKIP + WINDOW steps and is revised every WINDOW steps from the latest
    window's speed: batches prefetched by the workers make the first steps look faster than the run."""

    SKIP, WINDOW = 5, 20  # untimed steps (workers and kernels warming up), then steps per timed window

    def __init__(self, minutes: float | None, start: int) -> None:
        self.budget_s, self.start = (60 * minutes if minutes else None), start
        self.began = time.perf_counter()
        self.window_began = 0.0

    def steps_after(self, step: int, env: Distributed) -> int | None:
        """A revised planned total at the end of each timed window (else None); ranks agree on the smallest."""
        if self.budget_s is None or step < self.start + self.SKIP:
            return None
        now = time.perf_counter()
        if (step - self.start - self.SKIP) % self.WINDOW != 0:
            return None
        if step == self.start + self.SKIP:
            self.window_began = now
            return None
        per_step = (now - self.window_began) / self.WINDOW
        self.window_began = now
        planned = torch.tensor(step + max(1, int((self.budget_s - (now - self.began)) / per_step)), device=env.device)
        if env.world > 1:
            dist.all_reduce(planned, op=dist.ReduceOp.MIN)
        return int(planned)


class LossLog:
    """Appends one CSV row per logged step and redraws loss.png."""

    def __init__(self, out: Path) -> None:
        self.path = out / "loss.csv"

    def truncate_after(self, step: int) -> None:
        """Drop rows logged after the saved state we resume from, so the curve has no repeats."""
        if not self.path.exists():
            return
        lines = self.path.read_text().splitlines(keepends=True)
        kept = lines[:1] + [line for line in lines[1:] if int(line.split(",", 1)[0]) <= step]
        self.path.write_text("".join(kept))

    def append(self, step: int, values: dict[str, float]) -> None:
        new = not self.path.exists()
        with self.path.open("a", newline="") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(["step", *values])
            writer.writerow([step, *(f"{v:.6g}" for v in values.values())])

    def plot(self) -> None:
        if not self.path.exists():  # a run that ends before its first logged step has no curve
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        with self.path.open() as handle:
            rows = list(csv.DictReader(handle))
        if not rows:
            return
        fig, ax = plt.subplots(figsize=(7, 4))
        steps = [int(r["step"]) for r in rows]
        window = max(1, len(rows) // 25)  # every batch is new scenes: show the trend over the noise
        for index, key in enumerate(k for k in rows[0] if k not in ("step", "lr", "seconds")):
            values = np.array([float(r[key]) for r in rows])
            trend = np.convolve(values, np.ones(window) / window, mode="valid")
            colour = f"C{index}"
            ax.plot(steps, values, color=colour, alpha=0.25, linewidth=0.8)
            ax.plot(steps[window - 1:], trend, color=colour, label=key)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.legend()
        fig.tight_layout()
        fig.savefig(self.path.with_suffix(".png"), dpi=80)
        plt.close(fig)
