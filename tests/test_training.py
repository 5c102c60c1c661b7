"""Training entry points: resumable runs through the real CLI, and LIM's step with a frozen LRM."""

import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from backend.models.config import preset
from backend.models.lim import LIM
from backend.models.lrm import LRM
from backend.train.train_lim import lim_step
from backend.train.train_lim import make_batch as lim_batch
from conftest import run_backend


def test_lrm_training_resumes_where_it_stopped(tmp_path: Path) -> None:
    out = tmp_path / "run"
    common = ["--out", str(out), "--batch", "1", "--rays", "32", "--log-every", "1", "--save-every", "2", "--warmup", "2"]
    first = run_backend("train", "lrm", "--steps", "2", *common)
    assert first.returncode == 0, first.stderr
    assert json.loads((out / "state.json").read_text())["step"] == 2
    second = run_backend("train", "lrm", "--steps", "3", "--resume", *common)
    assert second.returncode == 0, second.stderr
    assert "resuming" in second.stdout
    assert json.loads((out / "state.json").read_text())["step"] == 3
    with (out / "loss.csv").open() as handle:
        steps = [int(row["step"]) for row in csv.DictReader(handle)]
    assert steps == [1, 2, 3], "resumed runs continue the curve without repeats"
    assert (out / "loss.png").is_file() and (out / "model" / "model.safetensors").is_file()
    # a resume must not change what the run trains
    changed = run_backend("train", "lrm", "--steps", "4", "--resume", "--config", "base", *common)
    assert changed.returncode == 2 and "other settings" in changed.stderr and "config" in changed.stderr


def test_benchmarks_refuse_training_seeds() -> None:
    from backend.bench.interp import procedural_case

    with pytest.raises(ValueError, match="training seed"):
        procedural_case(5, 32)


def test_training_refuses_nothing_silently(tmp_path: Path) -> None:
    done = run_backend("train", "lim", "--lrm", str(tmp_path / "nope"), "--out", str(tmp_path / "x"), "--steps", "1")
    assert done.returncode == 2 and "not a checkpoint folder" in done.stderr


@pytest.mark.parametrize("causal", [True, False])
def test_lim_step_trains_lim_only(causal: bool) -> None:
    config = replace(preset("tiny"), dim=64, heads=2, lrm_blocks=2, lim_blocks=2, plane_resolution=32, image_size=32,
                     coarse_samples=8, fine_samples=8)
    torch.manual_seed(0)
    lrm = LRM(config).requires_grad_(False)
    lim = LIM.from_lrm(lrm)
    batch = lim_batch(step=0, rank=0, batch=1, size=32)
    losses = lim_step(lim, lrm, batch, rays=64, causal=causal)
    assert ("causal" in losses) == causal and {"triplane", "rgb", "mask", "depth"} <= set(losses)
    sum(losses.values()).backward()
    assert all(p.grad is None for p in lrm.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in lim.parameters())


def test_loss_log_drops_rows_after_the_resumed_step(tmp_path: Path) -> None:
    from backend.train.run import LossLog

    log = LossLog(tmp_path)
    for step in range(1, 6):
        log.append(step, {"total": 1.0 / step})
    log.truncate_after(3)
    log.append(4, {"total": 0.2})
    with (tmp_path / "loss.csv").open() as handle:
        assert [int(r["step"]) for r in csv.DictReader(handle)] == [1, 2, 3, 4]


def test_torchrun_ddp_on_two_cpu_ranks(tmp_path: Path) -> None:
    """The multi-process path: torchrun, Gloo, two ranks, for LRM, LIM on that LRM, and the diffusion model."""
    import os
    import subprocess
    import sys

    from conftest import REPO

    torchrun = Path(sys.executable).with_name("torchrun")
    common = ["--batch", "1", "--rays", "32", "--steps", "2", "--log-every", "1", "--save-every", "2", "--device", "cpu"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    for args in (["lrm", "--out", str(tmp_path / "lrm")],
                 ["lim", "--lrm", str(tmp_path / "lrm" / "model"), "--out", str(tmp_path / "lim")],
                 ["mvdiff", "--out", str(tmp_path / "mvdiff")]):
        done = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "backend", "train", *args, *common],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-1500:] + done.stderr[-1500:]
        assert json.loads((Path(args[-1]) / "state.json").read_text())["step"] == 2


def test_mvdiff_training_resumes_where_it_stopped(tmp_path: Path) -> None:
    out = tmp_path / "run"
    common = ["--out", str(out), "--batch", "1", "--log-every", "1", "--save-every", "2", "--warmup", "2"]
    assert run_backend("train", "mvdiff", "--steps", "2", *common).returncode == 0
    second = run_backend("train", "mvdiff", "--steps", "3", "--resume", *common)
    assert second.returncode == 0 and "resuming" in second.stdout, second.stderr
    assert json.loads((out / "state.json").read_text())["step"] == 3
    ema = json.loads((out / "ema" / "config.json").read_text())  # the averaged weights, saved with the run
    assert ema["kind"] == "mvdiff" and ema["step"] == 3
    with (out / "loss.csv").open() as handle:
        assert [int(row["step"]) for row in csv.DictReader(handle)] == [1, 2, 3]
    # a finished run continues as a new one with a new schedule, from its weights
    warm = run_backend("train", "mvdiff", "--steps", "1", "--init", str(out / "model"), "--out", str(tmp_path / "more"),
                       "--batch", "1", "--log-every", "1", "--save-every", "1", "--warmup", "1")
    assert warm.returncode == 0 and f"warm start from {out / 'model'}" in warm.stdout, warm.stderr


def test_a_weight_average_is_continued_only_by_the_state_it_belongs_to(tmp_path: Path) -> None:
    from backend.models.mvdiffusion import DiffusionConfig, MultiViewDiffusion
    from backend.train.run import AveragedWeights

    config = DiffusionConfig(image_size=16, block_channels=(8, 16), attention_heads=2, token_dim=16, condition_patch=4)
    torch.manual_seed(0)
    old, new = MultiViewDiffusion(config), MultiViewDiffusion(config)
    AveragedWeights(old, tmp_path, "mvdiff", 0.998, start=0).save(step=5)

    def same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
        return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))

    assert same(AveragedWeights(new, tmp_path, "mvdiff", 0.998, start=5).model, old)  # resumed at its step
    assert same(AveragedWeights(new, tmp_path, "mvdiff", 0.998, start=0).model, new)  # a fresh run
    assert same(AveragedWeights(new, tmp_path, "mvdiff", 0.998, start=7).model, new)  # another state's average


def test_diffusion_steps_lower_the_loss_on_a_fixed_batch() -> None:
    from backend.models.mvdiffusion import DiffusionConfig, MultiViewDiffusion
    from backend.train.train_mvdiff import diffusion_step

    config = DiffusionConfig(image_size=16, block_channels=(8, 16), attention_heads=2, token_dim=16, condition_patch=4)
    torch.manual_seed(0)
    model = MultiViewDiffusion(config)
    g = torch.Generator().manual_seed(1)
    batch = {"image": torch.rand(4, 3, 16, 16, generator=g) * 2 - 1, "target": torch.rand(4, 9, 16, 16, generator=g) * 2 - 1,
             "previous": torch.rand(4, 9, 16, 16, generator=g) * 2 - 1, "has_previous": torch.tensor([0.0, 1, 1, 0]),
             "elevation": torch.tensor([0.1, 0.3, -0.1, 0.5])}
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    def loss() -> torch.Tensor:
        torch.manual_seed(5)  # the same noise and timesteps every time: a fixed objective
        return diffusion_step(model, batch)["v"]

    first = loss()
    for _ in range(10):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    assert loss().item() < 0.8 * first.item()


def test_lrm_batches_can_see_a_keyframe_as_a_monocular_job_does() -> None:
    """With --generated-views, a scene's views 1.. are the diffusion model's, from view 0, at its cameras."""
    from backend.models.mvdiffusion import DiffusionConfig, MultiViewDiffusion
    from backend.train.train_lrm import make_batch

    config = DiffusionConfig(image_size=32, block_channels=(8, 16), attention_heads=2, token_dim=16, condition_patch=4)
    torch.manual_seed(0)
    diffusion = MultiViewDiffusion(config).eval()
    true = make_batch(3, 0, 2, 32, False)
    seen = make_batch(3, 0, 2, 32, False, diffusion, generated_share=1.0)
    again = make_batch(3, 0, 2, 32, False, diffusion, generated_share=1.0)
    assert torch.equal(seen["views"], again["views"]), "a step's batch replays exactly after a resume"
    for name in ("rgb", "alpha", "depth"):  # the same scenes and targets, whatever the inputs
        assert torch.equal(seen[name], true[name])
    assert torch.equal(seen["views"][:, 0], true["views"][:, 0]), "view 0 is the true view"
    # the other views sit where the diffusion model puts them: the input camera turned about z by 90°, 180°, 270°
    for k, degrees in enumerate(config.azimuths_deg, start=1):
        angle = torch.tensor(degrees, dtype=torch.float64).deg2rad()
        turn = torch.eye(4, dtype=torch.float64)
        turn[:2, :2] = torch.stack([torch.stack([angle.cos(), -angle.sin()]), torch.stack([angle.sin(), angle.cos()])])
        back = seen["projections"][:, k].double() @ turn
        assert torch.allclose(back, seen["projections"][:, 0].double(), rtol=1e-4, atol=1e-3)
    assert not torch.allclose(seen["projections"][:, 1], true["projections"][:, 1])
    generated = seen["views"][:, 1:, :3]
    assert generated.min() >= 0 and generated.max() <= 1
    assert torch.allclose(generated * 255, (generated * 255).round(), atol=1e-3), "8-bit views, as the monocular path gives"
    assert (generated - true["views"][:, 1:, :3]).abs().mean() > 0.05, "an untrained model's views are not the true ones"


def test_lrm_training_on_generated_views_runs_and_keeps_its_share_on_resume(tmp_path: Path) -> None:
    out = tmp_path / "run"
    common = ["--out", str(out), "--batch", "1", "--rays", "32", "--log-every", "1", "--save-every", "1", "--warmup", "1"]
    first = run_backend("train", "lrm", "--steps", "1", "--generated-views", "1", *common)
    assert first.returncode == 0, first.stderr
    assert "100% of the scenes see views generated by" in first.stdout
    changed = run_backend("train", "lrm", "--steps", "2", "--resume", "--generated-views", "0.5", *common)
    assert changed.returncode == 2 and "generated_views" in changed.stderr


def test_a_time_budget_plans_from_the_latest_speed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Prefetched batches make the first steps fast: the plan must follow the slower steady state."""
    from backend.train import run

    clock = [0.0]
    monkeypatch.setattr(run.time, "perf_counter", lambda: clock[0])
    plan = run.StepsForBudget(minutes=1.0, start=0)
    env = run.Distributed("cpu")
    plans = {}
    for step in range(1, 60):
        clock[0] += 0.5 if step <= 25 else 1.0  # 0.5 s a step while the queue drains, then 1 s
        planned = plan.steps_after(step, env)
        if planned is not None:
            plans[step] = planned
    assert sorted(plans) == [25, 45]
    # at step 25, 12.5 s spent at 0.5 s a step: 25 + 47.5 / 0.5; at step 45, 32.5 s spent at 1 s a step: 45 + 27.5
    assert plans == {25: 120, 45: 72}
    assert run.StepsForBudget(minutes=None, start=0).steps_after(25, env) is None


def test_training_under_a_budget_stops_at_its_plan(tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = run_backend("train", "lrm", "--out", str(out), "--steps", "500", "--minutes", "0.05", "--batch", "1",
                       "--rays", "16", "--log-every", "100", "--save-every", "1000", "--warmup", "1")
    assert done.returncode == 0, done.stderr
    state = json.loads((out / "state.json").read_text())
    assert 25 <= state["step"] < 500 and state["args"]["steps"] == state["step"]
    assert "steps in all" in done.stdout


def test_workers_make_the_same_batches_as_inline() -> None:
    from functools import partial

    from backend.train.run import Prefetched
    from backend.train.train_lrm import make_batch

    make = partial(make_batch, rank=0, batch=1, size=32, canonical=False)
    fetched = Prefetched(make, start=7, steps=9, workers=2)
    for step in (7, 8):
        inline, prefetched = make(step), fetched(step)
        assert inline.keys() == prefetched.keys()
        assert all(torch.equal(inline[k], prefetched[k]) for k in inline)
    with pytest.raises(RuntimeError, match="in order"):
        Prefetched(make, start=0, steps=2, workers=1)(1)


def test_causal_weight_is_a_setting_a_resume_keeps(tmp_path: Path) -> None:
    out = tmp_path / "lim"
    common = ["--out", str(out), "--batch", "1", "--rays", "16", "--log-every", "1", "--warmup", "1"]
    first = run_backend("train", "lim", "--steps", "1", "--causal-weight", "1000", *common)
    assert first.returncode == 0, first.stderr
    assert json.loads((out / "state.json").read_text())["args"]["causal_weight"] == 1000
    changed = run_backend("train", "lim", "--steps", "2", "--resume", "--causal-weight", "10", *common)
    assert changed.returncode == 2 and "causal_weight" in changed.stderr
