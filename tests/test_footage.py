"""Monocular footage in: each decoder path on a small real file, the matte, and the framing transform."""

import tracemalloc
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from backend.io.cameras import ring_cameras
from backend.io.footage import probe_footage, read_footage, resample
from backend.io.framing import Framing, frame_object
from backend.io.matte import foreground, iou
from backend.io.video import VideoError
from backend.protocol import sequence_gap
from backend.world import make_object
from backend.world.render import render_clip
from conftest import SHARED


def moving_disc(frames: int = 6, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A red disc crossing a plain blue background: RGB frames and the true masks."""
    yy, xx = np.mgrid[:size, :size]
    rgb, masks = [], []
    for f in range(frames):
        mask = (xx - 20 - 4 * f) ** 2 + (yy - 32) ** 2 < 12**2
        image = np.zeros((size, size, 3), np.uint8)
        image[...] = (40, 60, 200)
        image[mask] = (220, 40, 30)
        rgb.append(image)
        masks.append(mask)
    return np.stack(rgb), np.stack(masks)


def write_clip(path: Path, frames: np.ndarray, codec: str, pix_fmt: str, fps: int = 12) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.mark.parametrize(("name", "codec", "pix_fmt"), [
    ("clip.mp4", "libx264", "yuv420p"), ("clip.mov", "libx264", "yuv420p"),
    ("clip.webm", "libvpx-vp9", "yuv420p"), ("clip.gif", "gif", "rgb8"),
])
def test_each_container_decodes(tmp_path: Path, name: str, codec: str, pix_fmt: str) -> None:
    frames, masks = moving_disc()
    footage = read_footage(write_clip(tmp_path / name, frames, codec, pix_fmt))
    assert footage.frames.shape == frames.shape and footage.alpha is None and footage.fps == pytest.approx(12, rel=0.05)
    red = footage.frames[..., 0].astype(int) > 128
    assert iou(red, masks) > 0.9  # the content survived the codec


def test_rgba_png_sequence_keeps_its_alpha(tmp_path: Path) -> None:
    frames, masks = moving_disc()
    folder = tmp_path / "sequence"
    folder.mkdir()
    for index, (frame, mask) in enumerate(zip(frames, masks, strict=True)):
        Image.fromarray(np.dstack([frame, mask.astype(np.uint8) * 255])).save(folder / f"frame_{index:03d}.png")
    footage = read_footage(folder)
    assert footage.alpha is not None and footage.frames.shape == frames.shape
    matte = foreground(footage.frames, footage.alpha)
    assert matte.method == "alpha" and iou(matte.masks, masks) == 1.0


def test_resampling_picks_frames_at_the_new_rate(tmp_path: Path) -> None:
    frames, _ = moving_disc(frames=12)
    footage = read_footage(write_clip(tmp_path / "clip.mp4", frames, "libx264", "yuv420p", fps=12), fps=6)
    assert len(footage.frames) == 6 and footage.fps == 6
    half = resample(read_footage(tmp_path / "clip.mp4"), 6)
    np.testing.assert_array_equal(half.frames, footage.frames)


def test_a_frame_range_decodes_only_its_frames_shrunk_as_it_goes(tmp_path: Path) -> None:
    """A range of a long clip is the same frames as the whole clip cut (at the clip's rate and resampled), and
    reading it holds only those frames, shrunk: a few frames of a 720p clip cost a fraction of the whole decode."""
    frames, _ = moving_disc(frames=48, size=64)
    big = np.repeat(np.repeat(frames, 12, axis=1), 20, axis=2)  # 1280 x 768, the disc's edges still sharp
    path = write_clip(tmp_path / "long.mp4", big, "libx264", "yuv420p", fps=24)
    whole = read_footage(path)
    part = read_footage(path, start=10, stop=14)
    np.testing.assert_array_equal(part.frames, whole.frames[10:14])
    np.testing.assert_array_equal(read_footage(path, fps=8, start=3, stop=7).frames, resample(whole, 8).frames[3:7])
    assert read_footage(path, stop=100).frames.shape[0] == 48  # a range past the end stops at the end
    with pytest.raises(ValueError, match=r"long\.mp4: frame range \[60, 70\) is empty \(the clip has 48"):
        read_footage(path, start=60, stop=70)
    with pytest.raises(ValueError, match=r"frame range \[5, 5\) is empty"):
        read_footage(path, start=5, stop=5)

    tracemalloc.start()
    small = read_footage(path, start=20, stop=24, max_side=320)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert small.frames.shape == (4, 192, 320, 3) and small.source_size == (1280, 768)
    assert peak < whole.frames.nbytes / 6, f"peak {peak / 2**20:.0f} MiB for 4 frames of 48"
    expected = np.stack([cv2.resize(f, (320, 192), interpolation=cv2.INTER_AREA) for f in whole.frames[20:24]])
    assert np.abs(small.frames.astype(int) - expected).mean() < 1


def test_shrinking_footage_with_alpha_keeps_outline_colours(tmp_path: Path) -> None:
    """Shrunk RGBA footage composited on white equals the full-size footage composited on white, then shrunk:
    colour is averaged with its coverage, so a transparent backdrop's colour does not bleed into the outline."""
    frames, masks = moving_disc(frames=2, size=64)
    folder = tmp_path / "rgba"
    folder.mkdir()
    for index, (frame, mask) in enumerate(zip(frames, masks, strict=True)):
        black_behind = np.where(mask[..., None], frame, 0).astype(np.uint8)  # what an RGBA render keeps under alpha 0
        Image.fromarray(np.dstack([black_behind, mask.astype(np.uint8) * 255])).save(folder / f"frame_{index:03d}.png")
    small = read_footage(folder, max_side=16)
    on_white = small.frames * small.alpha[..., None] + 255 * (1 - small.alpha[..., None])
    full = np.where(masks[..., None], frames, 255).astype(np.float32)
    expected = np.stack([cv2.resize(f, (16, 16), interpolation=cv2.INTER_AREA) for f in full])
    assert np.abs(on_white - expected).max() < 2


@pytest.mark.parametrize(("codec", "pix_fmt"), [("png", "rgba"), ("qtrle", "argb")])
def test_video_with_alpha_keeps_it(tmp_path: Path, codec: str, pix_fmt: str) -> None:
    """A keyed video (PNG or Animation codec in a MOV, as compositors export them) is read with its alpha, shrunk with
    it too; an H.264 clip, which has none, is read as RGB."""
    frames, masks = moving_disc()
    path = tmp_path / "keyed.mov"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(12))
        stream.width, stream.height, stream.pix_fmt = 64, 64, pix_fmt
        for frame, mask in zip(frames, masks, strict=True):
            rgba = np.dstack([frame, mask.astype(np.uint8) * 255])
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgba, format="rgba")))
        container.mux(stream.encode())
    for side in (None, 32):
        footage = read_footage(path, max_side=side)
        truth = masks if side is None else np.stack([cv2.resize(m.astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA)
                                                     for m in masks])
        assert footage.alpha is not None and np.abs(footage.alpha - truth).max() < 0.01
    plain = read_footage(write_clip(tmp_path / "plain.mp4", frames, "libx264", "yuv420p"), max_side=32)
    assert plain.alpha is None and plain.frames.shape == (6, 32, 32, 3)


def test_a_numbered_image_reads_its_sequence_as_blender_numbers_it(tmp_path: Path) -> None:
    """A numbered image (as a Blender clip names its sequence) reads it and the images numbered on from it, up to the
    first gap, at the rate given (24 by default); a folder reads all its images in natural order (9 before 10)."""
    frames, _ = moving_disc(frames=12)
    for number in (*range(5, 17), 18):  # 5..16 is the shot, 18 after a gap
        Image.fromarray(frames[min(number - 5, 11)]).save(tmp_path / f"shot_{number}.png")
    Image.fromarray(frames[0]).save(tmp_path / "shot_0.png")  # before the sequence's first image
    Image.fromarray(frames[0]).save(tmp_path / "other_6.png")  # another name
    shot = read_footage(tmp_path / "shot_7.png", sequence_fps=30)
    assert shot.fps == 30 and len(shot.frames) == 10  # shot_7 .. shot_16
    np.testing.assert_array_equal(shot.frames, frames[2:12])
    info = probe_footage(tmp_path / "shot_7.png", sequence_fps=30)
    assert (info.width, info.height, info.frames, info.fps) == (64, 64, 10, 30)
    assert probe_footage(tmp_path / "shot_7.png").fps == 24
    assert sequence_gap(tmp_path / "shot_7.png") == (
        "shot_17.png is missing: the sequence from shot_7.png stops at shot_16.png (10 images); 1 image(s) numbered "
        "after the gap are not read (fill the gap, or start from the first image after it)")
    assert sequence_gap(tmp_path / "shot_18.png") is None and sequence_gap(tmp_path / "other_6.png") is None
    assert sequence_gap(tmp_path) is None  # a folder reads all its images
    Image.fromarray(frames[0][:32]).save(tmp_path / "shot_12.png")  # one image of another size: named before decoding
    with pytest.raises(VideoError, match=r"shot_12\.png: 64x32, but the sequence's first image shot_7\.png is 64x64"):
        probe_footage(tmp_path / "shot_7.png")
    Image.fromarray(frames[7]).save(tmp_path / "shot_12.png")
    np.testing.assert_array_equal(read_footage(tmp_path / "shot_7.png", start=3, stop=5).frames, frames[5:7])
    grey = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)  # a 16-bit mask, as renders write them
    cv2.imwrite(str(tmp_path / "mask_1.png"), grey)
    assert np.abs(read_footage(tmp_path / "mask_1.png").frames[0, ..., 1].astype(int) - grey / 257).max() <= 0.5
    turned = Image.fromarray(frames[0][:, :40])  # 40 wide, 64 tall as stored ...
    exif = turned.getexif()
    exif[0x0112] = 6  # ... and shown turned a quarter (a phone held upright): 64 wide, 40 tall
    turned.save(tmp_path / "phone_1.jpg", exif=exif)
    assert read_footage(tmp_path / "phone_1.jpg").frames.shape[1:3] == (40, 64)
    assert (probe_footage(tmp_path / "phone_1.jpg").width, probe_footage(tmp_path / "phone_1.jpg").height) == (64, 40)
    folder = tmp_path / "unpadded"
    folder.mkdir()
    for index in range(12):
        Image.fromarray(frames[index]).save(folder / f"f{index}.png")  # f10 sorts before f2 as text
    np.testing.assert_array_equal(read_footage(folder).frames, frames)
    (folder / "f0.png").write_bytes(b"not a png")  # images outside the range are never read
    np.testing.assert_array_equal(read_footage(folder, start=3, stop=5).frames, frames[3:5])
    with pytest.raises(VideoError, match=r"f0\.png: cannot read"):
        read_footage(folder)
    Image.fromarray(frames[0]).save(folder / "cover.jpg")  # another kind of image: which sequence is meant?
    with pytest.raises(VideoError, match=r"holds several image sequences \(12 x f#\.png, 1 x cover\.jpg\)"):
        probe_footage(folder)
    (folder / "cover.jpg").unlink()
    for number in (1, 2):  # a second numbered run beside the first (a compositor's passes)
        Image.fromarray(frames[0]).save(folder / f"depth{number}.png")
    with pytest.raises(VideoError, match=r"several image sequences \(12 x f#\.png, 2 x depth#\.png\); name the first "
                                         r"image of the one to read \(e\.g\. f0\.png\)"):
        read_footage(folder)


def test_bad_footage_is_named(tmp_path: Path) -> None:
    (tmp_path / "notes.mp4").write_text("not a video")
    with pytest.raises(VideoError, match=r"notes\.mp4"):
        read_footage(tmp_path / "notes.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VideoError, match="no images"):
        read_footage(tmp_path / "empty")


def test_plain_and_busy_backgrounds_are_matted() -> None:
    frames, masks = moving_disc()
    plain = foreground(frames)
    assert plain.method == "plain" and iou(plain.masks, masks) > 0.95
    rng = np.random.default_rng(0)
    busy = frames.copy()
    noise = rng.integers(0, 255, size=frames.shape, dtype=np.uint8)
    busy[~masks] = (0.5 * busy[~masks] + 0.5 * noise[~masks]).astype(np.uint8)
    cut = foreground(busy)
    assert cut.method == "grabcut" and iou(cut.masks, masks) > 0.7
    assert foreground(frames, user_masks=masks.astype(np.uint8) * 255).method == "user"



def pendulum_frame(size: int = 64, supersample: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """A dark pendulum over white, anti-aliased (drawn 8× larger, area-averaged): a post 2 px wide standing on the
    frame's bottom edge, a beam, a rod 1.25 px wide, a bob that touches nothing, the background showing through the
    closed gap between post, beam and a brace, a pale grey patch on the bob, and two one-pixel specks of
    noise. Returns the uint8 frame and the true mask (coverage above one half)."""
    big = size * supersample
    cover = np.zeros((big, big), np.float32)

    def box(x0: float, y0: float, x1: float, y1: float) -> None:
        cover[int(y0 * supersample):int(y1 * supersample), int(x0 * supersample):int(x1 * supersample)] = 1

    box(40, 12, 42, 64)  # the post, down to the frame's edge
    box(16, 12, 42, 14)  # the beam
    box(24.75, 14, 26, 38)  # the rod
    box(28, 14, 30, 30)  # a brace: post, beam and brace close a gap of background between them
    box(28, 28, 42, 30)
    yy, xx = np.mgrid[:big, :big] / supersample
    cover[(xx - 25) ** 2 / 36 + (yy - 43) ** 2 / 9 < 1] = 1  # the bob, 3 px below the rod's end
    coverage = cover.reshape(size, supersample, size, supersample).mean(axis=(1, 3))
    ink = np.array([30, 70, 50], np.float32)
    frame = 255 * (1 - coverage[..., None]) + ink * coverage[..., None]
    frame[42:45, 22:28] = 240  # a pale patch on the bob, too pale to pass as object by its colour alone
    frame[5, 5] = frame[50, 8] = ink  # noise
    return frame.round().astype(np.uint8), coverage > 0.5


def test_plain_matte_keeps_thin_and_separate_parts_and_the_background_between_them() -> None:
    """At 64², the plain-background matte keeps a 1.25-px rod and a bob that touches nothing (an opening and the
    largest component used to erase both), still calls the background plain although the object covers part of
    the frame's border, trims the anti-aliased outline to pixels the object half covers, leaves the enclosed
    gap that shows the background open but fills a pale patch on the object, and drops one-pixel noise."""
    frame, truth = pendulum_frame()
    matte = foreground(frame[None])
    mask = matte.masks[0]
    assert matte.method == "plain"
    assert iou(mask, truth) > 0.9
    assert mask[20:36, 25].all() and mask[42:45, 21:30].all()  # rod and bob
    assert not mask[16:27, 31:39].any()  # the closed gap of background
    assert mask[42:45, 22:28].all()  # the pale patch
    assert not mask[5, 5] and not mask[50, 8]  # noise
    alpha = foreground(frame[None], alpha=truth[None].astype(np.float32)).masks[0]
    assert (alpha == truth).all()  # an alpha channel keeps every part too

def test_davis_matte_agrees_with_an_independent_grabcut() -> None:
    """DAVIS footage (background removed to white): the plain-background matte and GrabCut, two unrelated
    methods, agree on the object in every sampled frame."""
    path = SHARED / "data" / "videos" / "davis" / "bear.gif"
    if not path.is_file():
        pytest.skip("../shared/data/videos/davis is not present")
    footage = read_footage(path)
    frames = footage.frames[::5]
    plain = foreground(frames)
    assert plain.method == "plain"
    from backend.io.matte import grabcut

    for frame, mask in zip(frames, plain.masks, strict=True):
        assert iou(mask, grabcut(frame)) > 0.8
        assert 0.05 < mask.mean() < 0.6


def test_framing_is_one_window_for_the_clip_and_round_trips() -> None:
    frames, masks = moving_disc()
    framing = frame_object(masks, size=32)
    points = np.array([[10.0, 20.0], [50.5, 3.25]])
    np.testing.assert_allclose(framing.to_source(framing.to_model(points)), points, atol=1e-9)
    cropped, alphas = framing.apply(frames, masks)
    assert cropped.shape == (6, 32, 32, 3) and alphas.shape == (6, 32, 32)
    union = alphas.max(axis=0) > 0.5
    rows, cols = np.nonzero(union)
    assert abs((rows.min() + rows.max()) / 2 - 15.5) < 2 and abs((cols.min() + cols.max()) / 2 - 15.5) < 2  # centred
    assert (cropped[alphas < 0.01] >= 252).all()  # background made white (an edge pixel keeps its sliver of object)
    with pytest.raises(ValueError, match="no foreground"):
        frame_object(np.zeros_like(masks), size=32)


def test_framing_down_averages_detail_finer_than_the_output_pixels() -> None:
    """A 512² clip framed into 64²: each output pixel averages the 8×8 clip pixels under it (a pixel-sized
    checkerboard comes out flat grey, not one sampled pixel in 64), and a spot lands where ``to_model`` says."""
    yy, xx = np.mgrid[:512, :512]
    checker = np.where(((xx + yy) % 2 == 0)[..., None], 0, 255).astype(np.uint8).repeat(3, axis=2)
    framing = Framing(left=0.0, top=0.0, side=512.0, size=64)
    cropped, alphas = framing.apply(checker[None], np.ones((1, 512, 512), np.float32))
    inner = cropped[0, 1:-1, 1:-1].astype(np.float32)
    assert abs(inner.mean() - 127.5) < 2 and inner.std() < 2
    spot = np.zeros((1, 512, 512), np.float32)
    spot[0, 200:208, 96:104] = 1
    framing = Framing(left=10.0, top=20.0, side=480.0, size=60)
    _, alphas = framing.apply(np.full((1, 512, 512, 3), 128, np.uint8), spot)
    rows, cols = np.nonzero(alphas[0] > 0)
    weights = alphas[0][rows, cols]
    centre = [(cols * weights).sum() / weights.sum(), (rows * weights).sum() / weights.sum()]
    np.testing.assert_allclose(centre, framing.to_model(np.array([99.5, 203.5])), atol=0.05)


def test_framed_outlines_blend_with_white_as_a_render_does() -> None:
    """A world object filmed at 512² over white and over a grey-green wall, framed into 64²: each outline pixel
    shows the object's share of it over white, as the render over white averaged down does (within a few levels;
    averaging first and compositing with the averaged matte after was 26-33 levels off on white, 7-11 on the wall)."""
    camera = ring_cameras(1, np.random.default_rng([1000000, 9]), size=512)[0]
    render = render_clip(make_object(1000000), [camera], np.array([0.0]), supersample=2)
    alpha, white = render.alpha[0, 0], render.composite(1.0)[0, 0]
    wall = np.array([0.45, 0.55, 0.4], np.float32)
    walled = np.clip((render.rgb[0, 0] * alpha[..., None] + wall * (1 - alpha[..., None])) * 255 + 0.5, 0, 255).astype(np.uint8)
    framing = Framing(left=3.0, top=5.0, side=504.0, size=64)
    ideal, _ = framing.apply(white[None], np.ones((1, 512, 512), np.float32))  # no matte: the render averaged down
    _, coverage = framing.apply(white[None], alpha[None])
    outline = (coverage[0] > 0.05) & (coverage[0] < 0.95)
    assert outline.sum() > 50
    for name, footage in (("white", white), ("wall", walled)):
        framed, _ = framing.apply(footage[None], foreground(footage[None]).masks)
        error = np.abs(framed[0].astype(np.float32) - ideal[0])[outline].mean()
        assert error < 4, f"{name}: the outline is {error:.1f} levels off"


def test_a_still_camera_over_clutter_is_matted_from_what_moves() -> None:
    """A world clip filmed by a still camera over a cluttered backdrop (no plain wall): the matte finds the backdrop
    (each pixel's median) and cuts what moves in front of it, well above GrabCut from a centred box; a panning camera
    has no still backdrop, and a clip too short to tell falls back to that box."""
    from backend.io.matte import grabcut, in_front_of_backdrop
    from backend.world.backdrop import over_backdrop

    camera = ring_cameras(1, np.random.default_rng([1000004, 9]), size=128)[0]
    render = render_clip(make_object(1000004), [camera], np.linspace(0, 1, 16), supersample=2)
    rgb, alpha = render.rgb[0] * 255, render.alpha[0]
    truth = alpha > 0.5
    still = over_backdrop(rgb, alpha, np.random.default_rng(3))
    matte = foreground(still)
    box = np.mean([iou(grabcut(f), t) for f, t in zip(still, truth, strict=True)])
    found = np.mean([iou(m, t) for m, t in zip(matte.masks, truth, strict=True)])
    assert matte.method == "backdrop" and found > 0.8 and found > box + 0.08, (found, box)  # 0.83 against 0.73
    np.testing.assert_array_equal(foreground(still).masks, matte.masks)  # the same clip, the same masks
    assert in_front_of_backdrop(over_backdrop(rgb, alpha, np.random.default_rng(3), pan=3.0)) is None
    assert foreground(still[:2]).method == "grabcut"
