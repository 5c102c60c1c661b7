"""Checkpoint folders: `config.json` + `model.safetensors`, loaded strictly, never pickled.

The loader builds the model from the config, then requires every tensor name and shape to
match exactly; anything else (missing or extra tensors, wrong shapes, pickle files, a file
that is not safetensors) is refused with a message that says what is wrong. Nothing is ever
downloaded: a checkpoint is a local folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from backend.models.config import ModelConfig
from backend.models.lim import LIM
from backend.models.lrm import LRM

KINDS = ("lrm", "lim", "mvdiff")


def model_classes(kind: str) -> tuple[type[nn.Module], Any]:
    """(model class, config class) of a kind; diffusers is imported only when a diffusion model is asked for."""
    if kind == "mvdiff":
        from backend.models.mvdiffusion import DiffusionConfig, MultiViewDiffusion

        return MultiViewDiffusion, DiffusionConfig
    return {"lrm": LRM, "lim": LIM}[kind], ModelConfig


PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle")
CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be loaded; the message names the problem."""


def save_checkpoint(model: nn.Module, folder: str | Path, kind: str, dtype: torch.dtype | None = None,
                    extra: dict[str, Any] | None = None) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {name: (t.detach().to(dtype) if dtype and t.is_floating_point() else t.detach()).contiguous().cpu()
               for name, t in model.state_dict().items()}
    meta = {"kind": kind, "config": model.config.to_dict(), "format": 1, **(extra or {})}
    tmp = folder / (WEIGHTS_FILE + ".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(folder / WEIGHTS_FILE)  # never leave a half-written checkpoint behind
    (folder / CONFIG_FILE).write_text(json.dumps(meta, indent=1))


def read_config(folder: str | Path) -> dict[str, Any]:
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: not a checkpoint folder")
    pickles = [p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES]
    if pickles:
        raise CheckpointError(f"{folder}: refusing pickle files ({', '.join(pickles)}); checkpoints are safetensors only")
    try:
        return json.loads((folder / CONFIG_FILE).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{folder}: no {CONFIG_FILE}") from None
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{folder / CONFIG_FILE}: not valid JSON ({error})") from None


def load_checkpoint(folder: str | Path, kind: str, device: str | torch.device = "cpu") -> nn.Module:
    """Build and load a model of ``kind`` from ``folder``, strictly; returns it in eval mode, float32."""
    folder = Path(folder)
    meta = read_config(folder)
    if kind not in KINDS:
        raise CheckpointError(f"unknown model kind {kind!r}; choose from {', '.join(KINDS)}")
    if meta.get("kind") != kind:
        raise CheckpointError(f"{folder}: holds a {meta.get('kind')!r} model, expected {kind!r}")
    model_class, config_class = model_classes(kind)
    try:
        config = config_class.from_dict(meta["config"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{folder / CONFIG_FILE}: bad model config ({error})") from None
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"{folder}: no {WEIGHTS_FILE}")
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{weights}: not a safetensors file ({error})") from None
    model = model_class(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    wrong = sorted(n for n in set(expected) & set(tensors) if tensors[n].shape != expected[n].shape)
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensors (e.g. {missing[0]})")
    if extra:
        problems.append(f"{len(extra)} unexpected tensors (e.g. {extra[0]})")
    if wrong:
        n = wrong[0]
        problems.append(f"{len(wrong)} wrong shapes (e.g. {n}: {tuple(tensors[n].shape)} vs {tuple(expected[n].shape)})")
    if problems:
        raise CheckpointError(f"{weights} does not fit its config: " + "; ".join(problems))
    model.load_state_dict({n: t.float() if t.is_floating_point() else t for n, t in tensors.items()})
    return model.to(device).eval()


def warm_start(model: nn.Module, folder: str | Path, kind: str) -> list[str]:
    """Initialise ``model`` from a checkpoint of a smaller variant (e.g. LRM -> canonical LRM).

    Tensors with the same name and shape are copied; an input layer that gained channels
    (the canonical XYZ maps) keeps the old weights for the old channels and zeros for the new
    ones, so the warm-started model computes exactly what the old one did until it learns to
    use them. Returns the names left at their fresh initialisation (new heads).
    """
    source = load_checkpoint(folder, kind)
    old, new = source.state_dict(), model.state_dict()
    if source.config.patch_size != model.config.patch_size or source.config.dim != model.config.dim:
        raise CheckpointError(f"{folder}: a {source.config.dim}-wide, patch-{source.config.patch_size} model "
                              f"cannot warm-start a {model.config.dim}-wide, patch-{model.config.patch_size} one")
    fresh = []
    with torch.no_grad():
        for name, target in new.items():
            tensor = old.get(name)
            if tensor is not None and tensor.shape == target.shape:
                target.copy_(tensor)
            elif tensor is not None and name.endswith("tokenizer.linear.weight"):
                _copy_input_channels(target, tensor, model.config.patch_size)
            else:
                fresh.append(name)
    return fresh


def _copy_input_channels(target: torch.Tensor, source: torch.Tensor, patch: int) -> None:
    """Patch-embedding weights (D, C·p²) laid out channel-major: copy the first C_old channels, zero the rest."""
    dim = target.shape[0]
    target_view = target.view(dim, -1, patch * patch)
    source_view = source.view(dim, -1, patch * patch)
    if source_view.shape[1] > target_view.shape[1]:
        raise CheckpointError("the warm-start source has more input channels than the model")
    target_view.zero_()
    target_view[:, : source_view.shape[1]] = source_view
