"""MP4 through PyAV: frames survive the round trip; broken files give clear errors."""

from pathlib import Path

import numpy as np
import pytest

from backend.io.footage import read_footage
from backend.io.video import VideoError, probe_video, read_video, write_mp4
from conftest import write_turned


def _frames(count: int = 12, size: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size] / size
    frames = [np.stack([x, y, 0.5 + 0.4 * np.sin(6 * x + i / 2) * np.cos(5 * y)], -1) for i in range(count)]
    return (np.stack(frames) * 255).astype(np.uint8)


def test_mp4_round_trip(tmp_path: Path) -> None:
    frames = _frames()
    write_mp4(tmp_path / "clip.mp4", frames, fps=24)
    decoded, fps = read_video(tmp_path / "clip.mp4")
    assert decoded.shape == frames.shape and fps == pytest.approx(24)
    mse = np.mean((decoded.astype(float) - frames.astype(float)) ** 2)
    assert 10 * np.log10(255**2 / mse) > 35


def test_odd_sizes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="even"):
        write_mp4(tmp_path / "odd.mp4", np.zeros((2, 63, 64, 3), np.uint8), fps=24)


@pytest.mark.parametrize("content", [b"", b"this is not a video at all\n" * 20])
def test_broken_files_give_clear_errors(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.mp4"
    path.write_bytes(content)
    with pytest.raises(VideoError, match=r"broken\.mp4"):
        read_video(path)


def test_truncated_mp4_fails_clearly_or_keeps_its_decodable_frames(tmp_path: Path) -> None:
    write_mp4(tmp_path / "full.mp4", _frames(24), fps=24)
    data = (tmp_path / "full.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    try:
        decoded, _ = read_video(tmp_path / "cut.mp4")
    except VideoError as error:
        assert "cut.mp4" in str(error)
    else:
        assert 0 < len(decoded) <= 24


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match=r"no such file"):
        read_video(tmp_path / "nope.mp4")


def _portrait(count: int = 3) -> np.ndarray:
    """Upright footage 48 wide, 64 tall, every corner different: any wrong turn or mirror shows."""
    frames = np.full((count, 64, 48, 3), 40, np.uint8)
    frames[:, :16, :12] = (250, 40, 40)  # top left red
    frames[:, :8, -12:] = (40, 250, 40)  # top right green
    frames[:, -20:, :24] = (40, 40, 250)  # bottom left blue
    return frames


# (display turn, hflip, vflip): phones write the quarter turns; cameras on gimbals and editors write the mirrors
ORIENTATIONS = [(90, False, False), (-90, False, False), (180, False, False), (0, True, False), (0, False, True),
                (90, True, False), (270, False, True), (0, False, False)]


@pytest.mark.parametrize(("degrees", "hflip", "vflip"), ORIENTATIONS)
def test_clips_are_read_upright_as_players_show_them(tmp_path: Path, degrees: int, hflip: bool, vflip: bool) -> None:
    upright = _portrait()
    write_turned(tmp_path / "phone.mp4", upright, degrees, hflip, vflip)
    for frames in (read_video(tmp_path / "phone.mp4")[0], read_footage(tmp_path / "phone.mp4").frames):
        assert frames.shape == upright.shape
        assert np.abs(frames.astype(int) - upright).mean() < 4
    info = probe_video(tmp_path / "phone.mp4")
    assert (info.width, info.height) == (48, 64)


def test_blender_and_the_backend_agree_on_a_phone_clips_size(tmp_path: Path) -> None:
    """The add-on gives each camera its movie clip's size; Blender shows phone clips turned upright."""
    bpy = pytest.importorskip("bpy")
    write_turned(tmp_path / "phone.mp4", _portrait(), -90)
    clip = bpy.data.movieclips.load(str(tmp_path / "phone.mp4"))
    info = probe_video(tmp_path / "phone.mp4")
    assert tuple(clip.size) == (info.width, info.height) == (48, 64)
    bpy.data.movieclips.remove(clip)
