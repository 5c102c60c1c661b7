"""MP4 through PyAV: frames survive the round trip; broken files give clear errors."""

from pathlib import Path

import numpy as np
import pytest

from backend.io.video import VideoError, read_video, write_mp4


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
