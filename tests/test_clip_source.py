"""Multi-view footage in: each view ends up over white, whatever it was filmed against."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from backend.io.clip_folder import write_clip_folder
from backend.io.clip_source import load_clip, sequence_gaps
from backend.io.matte import iou
from backend.io.video import write_mask_clip, write_mp4
from backend.world.clip import render_world_clip
from conftest import over_noise, write_turned, write_views


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


def test_mask_clips_replace_the_matte_of_busy_footage(tmp_path: Path) -> None:
    """Footage over coloured noise: the automatic matte finds nothing there, which is refused with a pointer to mask
    clips; with a mask clip per noisy view (the view filmed over white left to the matte with None) the given views'
    mattes are the masks, over any frame range, and their backgrounds go white; a mask clip of another size, too
    short, or a count that is not one per view is refused by name."""
    cameras, _, filmed, truth = over_noise(1000000, views=3, frames=4)
    filmed[1][~truth[1]] = 255  # view 1 over white
    views, mask_clips = write_views(tmp_path, filmed, truth)
    with pytest.raises(ValueError, match=r"view 0: its matte shows no object.*mask clip"):
        load_clip(views=views, cameras=cameras)
    given = load_clip(views=views, cameras=cameras, masks=[mask_clips[0], None, mask_clips[2]], frame_start=1)
    for view in (0, 2):
        assert iou(given.matte(view), truth[view, 1:]) > 0.97
        outside = ~truth[view, 1:]
        assert (given.frames[view][outside] >= 250).all(axis=-1).mean() > 0.97, f"view {view}: background not white"
    assert iou(given.matte(1), truth[1, 1:]) > 0.9  # the view left to the matte

    small = tmp_path / "small.mp4"
    write_mp4(small, np.zeros((4, 32, 32, 3), np.uint8), fps=12)
    short = tmp_path / "short.mp4"
    write_mp4(short, np.zeros((2, 64, 64, 3), np.uint8), fps=12)
    for bad, words in ((small, "small.mp4: 4 frame"), (short, "short.mp4: 2 frame")):
        with pytest.raises(ValueError, match=words):
            load_clip(views=views, cameras=cameras, masks=[bad, None, None])
    with pytest.raises(ValueError, match="one per view"):
        load_clip(views=views, cameras=cameras, masks=mask_clips[:2])


def test_a_clip_folder_reads_the_mask_clips_its_cameras_json_names(tmp_path: Path) -> None:
    """A clip folder's cameras.json may name a mask clip for a view; frame ranges cut it with the footage."""
    cameras, _, filmed, truth = over_noise(1000001, views=2, frames=3)
    filmed[0][~truth[0]] = 255  # view 0 over white, left to the matte
    write_clip_folder(tmp_path, filmed, cameras, np.linspace(0, 1, 3), 12.0, {"source": "test"})
    _, mask_clips = write_views(tmp_path / "masks", filmed, truth)
    manifest = json.loads((tmp_path / "cameras.json").read_text())
    manifest["views"][1]["mask"] = str(mask_clips[1].relative_to(tmp_path))
    (tmp_path / "cameras.json").write_text(json.dumps(manifest))
    clip = load_clip(tmp_path, frame_end=2)
    assert clip.put_on_white_views == (1,) and clip.frames.shape[1] == 2
    assert iou(clip.matte(1), truth[1, :2]) > 0.97 and iou(clip.matte(0), truth[0, :2]) > 0.9
    # a view and a mask may be image sequences too (a numbered image: the images numbered on from it)
    from PIL import Image

    (tmp_path / "frames").mkdir()
    for index, (frame, mask) in enumerate(zip(filmed[1], truth[1], strict=True)):
        Image.fromarray(frame).save(tmp_path / "frames" / f"view_1_{index:03d}.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "frames" / f"mask_1_{index:03d}.png")
    manifest["views"][1] |= {"video": "frames/view_1_000.png", "mask": "frames/mask_1_000.png"}
    (tmp_path / "cameras.json").write_text(json.dumps(manifest))
    from_images = load_clip(tmp_path, frame_end=2)
    np.testing.assert_array_equal(from_images.matte(1), truth[1, :2])
    assert np.abs(from_images.frames[1].astype(int) - clip.frames[1]).mean() < 3  # the video's frames, less its codec


def test_views_filmed_turned_load_upright_and_a_camera_of_another_shape_is_refused(tmp_path: Path) -> None:
    """Views stored as a phone stores them (pixels turned, a display matrix to show them upright) load as the same
    views stored upright. A camera whose image has another shape than its footage is refused by name. Views of
    different sizes load at the first one's size, cameras scaled along, and a smaller view's mask clip with it."""
    _, cameras, _, render = render_world_clip(1000001, views=2, frames=3, size=64)
    filmed = render.composite(1.0)
    plain, turned = [], []
    for view, degrees in enumerate((-90, 180)):
        plain.append(tmp_path / f"plain_{view}.mp4")
        write_mp4(plain[-1], filmed[view], fps=12)
        turned.append(tmp_path / f"turned_{view}.mp4")
        write_turned(turned[-1], filmed[view], degrees)
    upright, from_phone = load_clip(views=plain, cameras=cameras), load_clip(views=turned, cameras=cameras)
    assert np.abs(from_phone.frames.astype(int) - upright.frames).mean() < 2

    wide = tmp_path / "wide.mp4"
    write_mp4(wide, np.full((3, 64, 96, 3), 255, np.uint8), fps=12)
    with pytest.raises(ValueError, match=r"view 2 \(wide\.mp4\): the footage is 96x64 but its camera's image is 64x64"):
        load_clip(views=[plain[0], wide], cameras=cameras)
    half = tmp_path / "half.mp4"
    write_mp4(half, filmed[1][:, ::2, ::2], fps=12)
    half_mask = tmp_path / "half_mask.mp4"
    truth = render.alpha[1] > 0.5
    write_mask_clip(half_mask, truth[:, ::2, ::2], fps=12)
    mixed = load_clip(views=[plain[0], half], cameras=cameras, masks=[None, half_mask])
    assert mixed.frames.shape == upright.frames.shape
    np.testing.assert_allclose(mixed.cameras[1].K, cameras[1].K)
    assert np.abs(mixed.frames[1].astype(int) - upright.frames[1]).mean() < 6
    assert iou(mixed.matte(1), truth) > 0.85
    with pytest.raises(ValueError, match=r"plain_1\.mp4: 3 frame\(s\) at 64x64; its view 1 was filmed at 32x32"):
        load_clip(views=[plain[0], half], cameras=cameras, masks=[None, plain[1]])


def test_large_views_are_kept_shrunk_with_their_cameras_and_masks(tmp_path: Path) -> None:
    """Views larger than ``max_side`` are averaged down as they are decoded, their cameras scaled with them, and
    a mask clip filmed at the views' size follows: a 128² clip over noise loaded at 64 a side matches the same
    clip loaded whole and shrunk. By default a 720p view is kept at ``VIEW_SIDE`` (1024x576); the decode never holds
    the clip at its filmed size."""
    import tracemalloc

    from backend.io.clip_source import VIEW_SIDE, view_side

    cameras, _, filmed, truth = over_noise(1000003, views=2, frames=3)
    big = np.stack([[cv2.resize(f, (128, 128), interpolation=cv2.INTER_NEAREST) for f in view] for view in filmed])
    big_truth = np.repeat(np.repeat(truth, 2, axis=2), 2, axis=3)
    cameras = [c.resized(128, 128) for c in cameras]
    views, mask_clips = write_views(tmp_path, big, big_truth)
    whole = load_clip(views=views, cameras=cameras, masks=mask_clips, max_side=None)
    small = load_clip(views=views, cameras=cameras, masks=mask_clips, max_side=64)
    assert whole.frames.shape == (2, 3, 128, 128, 3) and small.frames.shape == (2, 3, 64, 64, 3)
    for view in range(2):
        np.testing.assert_allclose(small.cameras[view].K, cameras[view].resized(64, 64).K)
        shrunk = np.stack([cv2.resize(f, (64, 64), interpolation=cv2.INTER_AREA) for f in whole.frames[view]])
        assert np.abs(small.frames[view].astype(int) - shrunk).mean() < 4, f"view {view}"
        assert iou(small.matte(view), truth[view]) > 0.95

    wide = tmp_path / "wide.mp4"
    frames = np.full((12, 720, 1280, 3), 255, np.uint8)
    frames[:, 200:520, 400:880] = (180, 60, 40)
    write_mp4(wide, frames, fps=12)
    from backend.io.cameras import Camera

    camera = Camera([[1000.0, 0, 640], [0, 1000.0, 360], [0, 0, 1]], np.eye(4), 1280, 720)
    kept = load_clip(views=[wide], cameras=[camera])
    assert kept.frames.shape == (1, 12, 576, 1024, 3) and max(kept.frames.shape[2:4]) == VIEW_SIDE
    assert kept.cameras[0].K[0, 0] == pytest.approx(800.0)
    assert view_side(512) == VIEW_SIDE and view_side(1024) == 2048  # a larger texture keeps larger views
    tracemalloc.start()
    load_clip(views=[wide], cameras=[camera], max_side=256)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    filmed_frame = 1280 * 720 * 3  # the whole clip at this size would be 12 of them
    assert peak < 4 * filmed_frame, f"the decode held {peak / filmed_frame:.1f} frames' worth at the filmed size"


def test_views_at_other_frame_rates_pair_by_time_and_keyed_views_use_their_alpha(tmp_path: Path) -> None:
    """The first view sets the clip's rate: a view filmed at twice the rate gives its frames at the same instants, not
    the first half of its clip. A view that is a folder of RGBA images (keyed footage; under its transparent pixels,
    noise) is taken at the clip's rate, one image a frame, matted by its alpha (the speck filter costs the thin parts
    of a 64² view a few %) and put on white; an image sequence said to play at another rate pairs by time too."""
    from PIL import Image

    _, cameras, _, render = render_world_clip(1000002, views=3, frames=6, size=64)
    filmed = render.composite(1.0)
    write_mp4(tmp_path / "view_0.mp4", filmed[0], fps=30)
    keyed = tmp_path / "keyed"
    keyed.mkdir()
    noise = np.random.default_rng(0).uniform(0, 1, size=render.rgb.shape[1:]).astype(np.float32)
    for frame in range(6):  # under the transparent pixels: noise, which no colour matte reads as background
        alpha = render.alpha[1, frame][..., None]
        rgba = np.dstack([render.rgb[1, frame] * alpha + noise[frame] * (1 - alpha), alpha]) * 255 + 0.5
        Image.fromarray(rgba.clip(0, 255).astype(np.uint8)).save(keyed / f"{frame:04d}.png")
    write_mp4(tmp_path / "view_2.mp4", np.repeat(filmed[2], 2, axis=0), fps=60)  # each instant twice

    clip = load_clip(views=[tmp_path / "view_0.mp4", keyed, tmp_path / "view_2.mp4"], cameras=cameras)
    assert clip.frames.shape[:2] == (3, 6) and clip.fps == 30
    assert np.abs(clip.frames[2].astype(int) - filmed[2]).mean() < 3  # paired by time
    assert iou(clip.matte(1), render.alpha[1] > 0.5) > 0.93
    inside, outside = render.alpha[1] > 0.99, render.alpha[1] < 0.01
    assert (clip.frames[1][outside] >= 250).all(axis=-1).mean() > 0.99, "the keyed view's background is not white"
    assert np.abs(clip.frames[1][inside].astype(int) - filmed[1][inside]).mean() < 3
    # the same images named by the first (as a Blender clip names them), said to be filmed at half the clip's rate
    slow = load_clip(views=[tmp_path / "view_0.mp4", keyed / "0000.png", tmp_path / "view_2.mp4"], cameras=cameras,
                     sequence_fps=15)
    even, half = inside[[0, 1, 2]], slow.frames[1][[0, 2, 4]]  # clip frames 0, 2, 4 are images 0, 1, 2
    paired = np.abs(half[even].astype(int) - filmed[1][:3][even]).mean()
    by_index = np.abs(half[inside[[0, 2, 4]]].astype(int) - filmed[1][[0, 2, 4]][inside[[0, 2, 4]]]).mean()
    assert paired < 3 and by_index > 3 * paired, (paired, by_index)


def test_views_slid_along_a_timeline_are_paired_by_their_offsets(tmp_path: Path) -> None:
    """A 48-fps camera started 6 of its frames (3 of the clip's 24-fps frames) before the other (its clip slid along
    Blender's timeline to sync it): with an offset of 6 its frames pair with the other's by time, and its mask, a PNG
    sequence of one image a frame of its view, follows; without, it is paired out of step. Offsets are one per view."""
    from PIL import Image

    _, cameras, _, render = render_world_clip(1000001, views=2, frames=8, size=64)
    filmed = render.composite(1.0)
    early = np.concatenate([np.full((6, 64, 64, 3), 90, np.uint8), np.repeat(filmed[1], 2, axis=0)])
    write_mp4(tmp_path / "view_0.mp4", filmed[0], fps=24)
    write_mp4(tmp_path / "view_1.mp4", early, fps=48)
    masks = tmp_path / "mask_1"
    masks.mkdir()
    for index, alpha in enumerate(np.concatenate([np.zeros((6, 64, 64)), np.repeat(render.alpha[1], 2, axis=0)])):
        Image.fromarray((alpha > 0.5).astype(np.uint8) * 255).save(masks / f"{index:04d}.png")
    views = [tmp_path / "view_0.mp4", tmp_path / "view_1.mp4"]
    synced = load_clip(views=views, cameras=cameras, frame_start=1, frame_end=6, view_offsets=[0, 6],
                       masks=[None, masks], sequence_fps=24)  # the scene's rate, as the add-on sends it
    inside = render.alpha[1, 1:6] > 0.99
    assert synced.frames.shape[:2] == (2, 5)
    paired = np.abs(synced.frames[1][inside].astype(int) - filmed[1, 1:6][inside]).mean()  # H.264 at 64²: about 7
    assert iou(synced.matte(1), render.alpha[1, 1:6] > 0.5) > 0.9
    unsynced = load_clip(views=views, cameras=cameras, frame_start=1, frame_end=6)
    out_of_step = np.abs(unsynced.frames[1][inside].astype(int) - filmed[1, 1:6][inside]).mean()
    assert paired < 10 and out_of_step > 2 * paired, (paired, out_of_step)
    with pytest.raises(ValueError, match="one per view"):
        load_clip(views=views, cameras=cameras, view_offsets=[3])


def test_gaps_in_a_clip_folders_sequences_are_found(tmp_path: Path) -> None:
    """The warning of a sequence cut short by a gap reaches views a clip folder's cameras.json names, and masks."""
    from PIL import Image

    for name in ("view_0001", "view_0002", "view_0004", "mask_0001", "mask_0002"):
        Image.new("RGB", (8, 8)).save(tmp_path / f"{name}.png")
    (tmp_path / "cameras.json").write_text(json.dumps({"views": [{"video": "view_0001.png", "mask": "mask_0001.png"}]}))
    gaps = sequence_gaps([tmp_path, None])
    assert len(gaps) == 1 and gaps[0].startswith("view_0003.png is missing: the sequence from view_0001.png stops at "
                                                 "view_0002.png (2 images); 1 image(s) numbered after the gap")
    assert sequence_gaps([tmp_path / "mask_0001.png"]) == [] and sequence_gaps([tmp_path / "view_0004.png"]) == []
