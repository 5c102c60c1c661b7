"""`make demo`: the furthest end-to-end path that exists today.

For now: render a procedural multi-view clip with ground truth and its contact sheet, and
the same folder format from a real animated glTF asset rendered in Blender.
"""

from __future__ import annotations

import time
from pathlib import Path

from backend.world.clip import write_world_clip

SHARED_ASSET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "assets" / "Fox.glb"


def run(out: Path) -> int:
    started = time.perf_counter()
    info = write_world_clip(out / "world", seed=1_000_003, views=4, frames=16, size=128)
    print(f"[demo] world clip: {info['family']} ({info['motion']}) -> {out / 'world'} "
          f"in {time.perf_counter() - started:.1f}s; contact sheet {out / 'world' / 'contact.png'}")
    if SHARED_ASSET.is_file():
        from backend.world.gltf_clip import write_gltf_clip

        started = time.perf_counter()
        write_gltf_clip(out / "fox", SHARED_ASSET, "Walk", views=4, frames=8, size=128)
        print(f"[demo] glTF clip: Fox (Walk) rendered in Blender -> {out / 'fox'} "
              f"in {time.perf_counter() - started:.1f}s; contact sheet {out / 'fox' / 'contact.png'}")
    else:
        print(f"[demo] {SHARED_ASSET} not found: skipping the glTF clip")
    print("[demo] done. Reconstruction (LRM/LIM), tracking and the Blender import come in later milestones.")
    return 0
