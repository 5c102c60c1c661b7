"""`python -m backend bench matte`: the automatic matte on footage filmed over clutter, not a plain wall.

World seeds rendered from one camera (256², 32 frames; the true coverage) and the DAVIS clips (their first 32
frames at 288 px; their plain-background matte as the truth) put over a cluttered backdrop
(``world.backdrop``) three ways: a still camera, a hand-held one (the backdrop shaken up to 2 px a frame) and a
panning one (3 px a frame). Per case, mean IoU over the frames with the truth (coverage above one half) of: `box`,
GrabCut from a centred box (the only automatic matte for such footage before); `backdrop`, GrabCut in the box where
anything moves in front of the still backdrop (``matte.in_front_of_backdrop``; a moving camera gives none); and
`matte`, what ``matte.foreground`` chooses.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np

from backend.bench.results import append_row, device_description, today
from backend.io.cameras import ring_cameras
from backend.io.footage import read_footage
from backend.io.matte import foreground, grabcut, in_front_of_backdrop, iou
from backend.world import make_object
from backend.world.backdrop import over_backdrop
from backend.world.render import render_clip

SECTION = "Matte over clutter (`bench matte`)"
HEADER = ["date", "device", "camera", "cases", "IoU box (before)", "IoU backdrop (where it applies)", "IoU matte (chosen)",
          "chose backdrop"]
FRAMES = 32
DAVIS = ("bear", "camel", "cows", "dance-twirl", "hike", "horsejump-low")
CAMERAS = {"still": {}, "hand-held": {"shake": 2.0}, "panning": {"pan": 3.0}}


def world_case(seed: int) -> tuple[np.ndarray, np.ndarray]:
    camera = ring_cameras(1, np.random.default_rng([seed, 9]), size=256)[0]
    render = render_clip(make_object(seed), [camera], np.linspace(0, 1, FRAMES), supersample=2)
    return render.rgb[0] * 255, render.alpha[0]


def davis_case(path: Path) -> tuple[np.ndarray, np.ndarray]:
    frames = read_footage(path, stop=FRAMES, max_side=288).frames
    return frames.astype(np.float32), foreground(frames).masks.astype(np.float32)


def judge(frames: np.ndarray, truth: np.ndarray) -> dict[str, float | str | None]:
    def mean_iou(masks: np.ndarray) -> float:
        return float(np.mean([iou(m, t) for m, t in zip(masks, truth, strict=True)]))

    moving = in_front_of_backdrop(frames)
    chosen = foreground(frames)
    return {"box": mean_iou(np.stack([grabcut(f) for f in frames])), "backdrop": None if moving is None else mean_iou(moving),
            "matte": mean_iou(chosen.masks), "method": chosen.method}


def run(seeds: list[int], data: Path, results: Path, json_path: Path | None) -> dict:
    cases = {str(seed): world_case(seed) for seed in seeds}
    cases |= {name: davis_case(data / f"{name}.gif") for name in DAVIS if (data / f"{name}.gif").is_file()}
    figures: dict[str, dict] = {}
    device = device_description("cpu")
    for camera, motion in CAMERAS.items():
        per_case = {}
        for name, (rgb, alpha) in cases.items():
            filmed = over_backdrop(rgb, alpha, np.random.default_rng(zlib.crc32(name.encode())), **motion)
            per_case[name] = judge(filmed, alpha > 0.5)
            print(camera, name, {k: round(v, 3) if isinstance(v, float) else v for k, v in per_case[name].items()}, flush=True)
        applied = [c["backdrop"] for c in per_case.values() if c["backdrop"] is not None]
        summary = {"box": float(np.mean([c["box"] for c in per_case.values()])),
                   "backdrop": float(np.mean(applied)) if applied else None,
                   "matte": float(np.mean([c["matte"] for c in per_case.values()])),
                   "chose_backdrop": sum(c["method"] == "backdrop" for c in per_case.values())}
        figures[camera] = {"summary": summary, "per_case": per_case}
        backdrop = "—" if summary["backdrop"] is None else f"{summary['backdrop']:.3f} ({len(applied)})"
        append_row(results, SECTION, HEADER, [today(), device, camera, f"world {seeds[0]}–{seeds[-1]}, DAVIS {len(cases) - len(seeds)}",
                                              f"{summary['box']:.3f}", backdrop, f"{summary['matte']:.3f}",
                                              f"{summary['chose_backdrop']} of {len(cases)}"])
    if json_path:
        json_path.write_text(json.dumps({"device": device, "date": today(), "seeds": seeds, **figures}, indent=2))
    return figures
