"""Procedural textures defined in canonical space, so colour sticks to the moving surface.

A texture maps canonical surface points (where each point sits at t = 0) and the id of the
part they belong to, to RGB. It is evaluated per pixel from the rendered canonical map.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field

import numpy as np
import torch

KINDS = ("stripes", "spots", "gradient", "noise")


def _random_colour(rng: np.random.Generator, saturation: tuple[float, float] = (0.35, 0.9)) -> list[float]:
    return list(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(*saturation), rng.uniform(0.45, 0.95)))


@dataclass
class ProceduralTexture:
    """Base colour per part, blended with an accent colour by a pattern of one ``kind``."""

    kind: str
    part_colours: np.ndarray  # (P, 3)
    accent: np.ndarray  # (3,)
    directions: np.ndarray  # (K, 3) unit vectors
    frequencies: np.ndarray  # (K,)
    phases: np.ndarray  # (K,)
    centres: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # spots
    radius: float = 0.1

    @staticmethod
    def random(rng: np.random.Generator, parts: int) -> ProceduralTexture:
        kind = KINDS[rng.integers(len(KINDS))]
        base = np.array(_random_colour(rng))
        # parts share a hue family with small shifts, like one creature's fur and limbs
        part_colours = np.clip(base + rng.normal(0, 0.08, size=(parts, 3)), 0.05, 1.0)
        count = 4 if kind == "noise" else 1
        directions = rng.normal(size=(count, 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        return ProceduralTexture(
            kind=kind,
            part_colours=part_colours,
            accent=np.array(_random_colour(rng, (0.0, 1.0))),
            directions=directions,
            frequencies=rng.uniform(6.0, 22.0, size=count),
            phases=rng.uniform(0, 2 * np.pi, size=count),
            centres=rng.uniform(-0.8, 0.8, size=(int(rng.integers(6, 16)), 3)),
            radius=float(rng.uniform(0.07, 0.16)),
        )

    def pattern(self, points: torch.Tensor) -> torch.Tensor:
        """Blend weight in [0, 1] of the accent colour at canonical points (P, 3) -> (P,)."""
        dirs = torch.as_tensor(self.directions, dtype=points.dtype, device=points.device)
        freq = torch.as_tensor(self.frequencies, dtype=points.dtype, device=points.device)
        phase = torch.as_tensor(self.phases, dtype=points.dtype, device=points.device)
        proj = points @ dirs.T  # (P, K)
        if self.kind == "stripes":
            return torch.sigmoid(6.0 * torch.sin(freq * proj + phase)[:, 0])
        if self.kind == "gradient":
            return ((proj[:, 0] + 0.8) / 1.6).clamp(0, 1)
        if self.kind == "noise":
            wave = torch.sin(freq * 0.5 * proj + phase).sum(dim=1)
            return torch.sigmoid(3.0 * wave)
        centres = torch.as_tensor(self.centres, dtype=points.dtype, device=points.device)
        distance = torch.cdist(points, centres).amin(dim=1)
        return torch.sigmoid((self.radius - distance) * 60.0)

    def __call__(self, points: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
        """RGB (P, 3) at canonical points (P, 3) on parts (P,)."""
        base = torch.as_tensor(self.part_colours, dtype=points.dtype, device=points.device)[part]
        accent = torch.as_tensor(self.accent, dtype=points.dtype, device=points.device)
        weight = self.pattern(points)[:, None]
        return base * (1 - weight) + accent * weight

    def to_dict(self) -> dict:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()}
