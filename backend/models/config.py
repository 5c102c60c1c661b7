"""Model sizes as plain data: `tiny` (bundled, CPU) and `base` (paper sizes, GPUs)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any


def config_from_dict(kind: type, data: dict[str, Any]) -> Any:
    """A config dataclass from JSON data, refusing unknown keys (JSON lists become the tuples fields hold)."""
    unknown = set(data) - {f.name for f in fields(kind)}
    if unknown:
        raise ValueError(f"unknown {kind.__name__} keys: {', '.join(sorted(unknown))}")
    return kind(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


@dataclass(frozen=True)
class ModelConfig:
    image_size: int = 64  # input views are resized to image_size²
    patch_size: int = 8
    dim: int = 192
    heads: int = 4
    mlp_ratio: int = 4
    lrm_blocks: int = 6
    lim_blocks: int = 3
    feature_blocks: int = 2  # L: outputs of the last L blocks are the features LIM attends to
    triplane_tokens: int = 8  # tokens per plane side
    plane_channels: int = 32
    plane_resolution: int = 64  # after the deconvolution
    decoder_hidden: int = 64
    decoder_layers: int = 3
    canonical: bool = False  # extra input channels (XYZ maps) and a canonical-coordinate head
    bound: float = 1.0  # the triplane covers [-bound, bound]³
    coarse_samples: int = 32
    fine_samples: int = 32
    # per-texel view statistics added to the planes (models/lift.py PlaneLift); False in checkpoints
    # saved before it existed, so they load as they were trained
    plane_lift: bool = False
    # 3 more plane channels holding the colour the views agree on, which the decoder's RGB starts from
    # (needs plane_lift; models/triplane.py)
    colour_prior: bool = False
    # the canonical head predicts an offset from the point itself (canonical = x + offset) instead of the
    # coordinate outright: identity (no motion) is then the head's zero, where it starts; False in
    # checkpoints saved before it existed
    canonical_offset: bool = False

    def __post_init__(self) -> None:
        if self.colour_prior and not self.plane_lift:
            raise ValueError("colour_prior needs plane_lift: the lift computes the colours")

    @property
    def input_channels(self) -> int:
        return 3 + 6 + (3 if self.canonical else 0)  # RGB, Plücker, canonical XYZ

    @property
    def stored_channels(self) -> int:
        """Channels a plane holds: the learned features, then the colour prior's RGB."""
        return self.plane_channels + (3 if self.colour_prior else 0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> ModelConfig:
        return config_from_dict(ModelConfig, data)

    def with_canonical(self) -> ModelConfig:
        return replace(self, canonical=True, canonical_offset=True)


PRESETS: dict[str, ModelConfig] = {
    "tiny": ModelConfig(plane_lift=True, colour_prior=True),
    # LIM paper sizes: LRM 12 blocks, LIM 6 blocks; width and triplane as in LRM/TripoSR-class models
    "base": ModelConfig(
        image_size=256, patch_size=16, dim=1024, heads=16, lrm_blocks=12, lim_blocks=6, feature_blocks=4,
        triplane_tokens=32, plane_channels=40, plane_resolution=64, decoder_hidden=64, decoder_layers=4,
        coarse_samples=64, fine_samples=64, plane_lift=True, colour_prior=True,
    ),
}


def preset(name: str) -> ModelConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown config {name!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[name]
