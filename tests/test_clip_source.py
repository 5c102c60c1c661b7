"""Multi-view footage in: each view ends up over white, whatever it was filmed against."""

from pathlib import Path

import cv2
import numpy as np

from backend.io.clip_source import load_clip
from backend.io.video import write_mp4
from backend.world.clip import render_world_clip


def test_views_filmed_against_a_coloured_wall_are_put_on_white(tmp_path: Path) -> None:
    """A world clip's views written as videos, one over white, one over a plain grey-green wall, one over a
    busy backdrop (colours changing across it, as a room's): once loaded, the wall and the backdrop are white
    (the models read objects over white), the white view is untouched, and the object's own pixels are kept."""
    _, cameras, _, render = render_world_clip(1000000, views=3, frames=3, size=64)
    on_white = render.composite(1.0)
    rng = np.random.default_rng(0)
    wall = np.array([0.45, 0.55, 0.4], np.float32)
    coarse = rng.uniform(0.2, 0.8, size=(3, 4, 4, 3)).astype(np.float32)
    room = np.stack([cv2.resize(c, (64, 64), interpolation=cv2.INTER_CUBIC) for c in coarse])
    alpha = render.alpha[..., None]
    filmed = on_white.copy()
    filmed[1] = np.clip((render.rgb[1] * alpha[1] + wall * (1 - alpha[1])) * 255 + 0.5, 0, 255).astype(np.uint8)
    filmed[2] = np.clip((render.rgb[2] * alpha[2] + room * (1 - alpha[2])) * 255 + 0.5, 0, 255).astype(np.uint8)
    paths = []
    for view, frames in enumerate(filmed):
        paths.append(tmp_path / f"view_{view}.mp4")
        write_mp4(paths[-1], frames, fps=12)

    clip = load_clip(views=paths, cameras=cameras)
    assert clip.put_on_white_views == (1, 2)
    inside = render.alpha > 0.99
    outside = render.alpha < 0.01
    for view in range(3):
        frames = clip.frames[view].astype(np.float32)
        assert (frames[outside[view]] >= 250).mean() > 0.97, f"view {view}: background not white"
        error = np.abs(frames[inside[view]] - on_white[view][inside[view]]).mean()
        assert error < 12, f"view {view}: the object changed by {error:.1f} levels"
    unchanged = load_clip(views=paths[:1], cameras=cameras[:1])
    from backend.io.video import read_video

    np.testing.assert_array_equal(unchanged.frames[0], read_video(paths[0])[0])
