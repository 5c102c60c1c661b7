"""`make demo`'s driver at its smallest size: a world clip, then its reconstruction by the bundled models."""

from pathlib import Path

from PIL import Image

from backend.demo import run


def test_demo_driver_smallest(tmp_path: Path, capsys) -> None:
    assert run(tmp_path, views=2, frames=5, size=64, gltf=False) == 0
    printed = capsys.readouterr().out
    assert "novel-view PSNR_FG" in printed
    assert (tmp_path / "world" / "contact.png").is_file()
    sheet = Image.open(tmp_path / "reconstruction.png")
    assert sheet.size == (5 * 64, 4 * 64)  # 2 truth rows + 2 reconstruction rows, 5 frames
