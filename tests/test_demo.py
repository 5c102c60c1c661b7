"""`make demo`'s driver at its smallest size: a world clip, its reconstruction, and the real extension in
Blender turning it into demo.blend, demo.glb, a contact sheet and a turntable."""

from pathlib import Path

import av
from PIL import Image

from backend.demo import run


def test_demo_driver_smallest(tmp_path: Path, capsys) -> None:
    from backend.world.clip import render_world_clip

    _, _, _, render = render_world_clip(1000011, 1, 5, 96)  # a small monocular GIF for the monocular part
    frames = [Image.fromarray(f) for f in render.composite()[0]]
    frames[0].save(tmp_path / "mono.gif", save_all=True, append_images=frames[1:], duration=80)
    assert run(tmp_path / "out", views=2, frames=5, size=64, monocular=tmp_path / "mono.gif") == 0
    tmp_path = tmp_path / "out"
    printed = capsys.readouterr().out
    assert "novel-view PSNR_FG" in printed and "imported 5 frames as 6 shape keys" in printed
    assert (tmp_path / "world" / "contact.png").is_file()
    sheet = Image.open(tmp_path / "reconstruction.png")
    assert sheet.size == (5 * 64, 4 * 64)  # 2 truth rows + 2 reconstruction rows, 5 frames
    contact = Image.open(tmp_path / "demo_contact.png")
    assert contact.size[1] == 3 * 128 and contact.size[0] == 5 * 128  # input | input camera | side, 5 frames
    pixels = contact.convert("L").getextrema()
    assert pixels[0] < 200  # the renders show something, not a blank sheet
    with av.open(str(tmp_path / "demo_turntable.mp4")) as video:
        assert video.streams.video[0].frames == 10
    assert (tmp_path / "demo.blend").stat().st_size > 0 and (tmp_path / "demo.glb").stat().st_size > 0
    assert "monocular: mono.gif (one camera)" in printed and "5 frames imported" in printed
    mono = Image.open(tmp_path / "demo_monocular_contact.png")
    assert mono.size == (5 * 128, 3 * 128) and mono.convert("L").getextrema()[0] < 200
