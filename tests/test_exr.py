"""OpenEXR renders as footage: Blender's own single-layer and multilayer EXRs read as its Standard view shows them
(checked against the PNG Blender renders of the same frame), mattes kept linear, cropped renders placed in their
display window, and unreadable files named."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import OpenEXR
import pytest
from PIL import Image

from backend.io.footage import probe_footage, read_footage
from backend.io.video import VideoError, write_mp4

RENDER = textwrap.dedent("""
    import sys
    import bpy

    out = sys.argv[1]
    scene = bpy.context.scene
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.display.shading.color_type = "OBJECT"
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 48, 32, 100
    scene.render.film_transparent = True
    scene.render.dither_intensity = 0  # PNGs without noise, to compare pixel by pixel
    scene.view_settings.view_transform = "Standard"
    for name in ("Cube", "Light"):
        if name in bpy.data.objects:
            bpy.data.objects[name].hide_render = True
    bpy.ops.mesh.primitive_uv_sphere_add(radius=1.2)
    bpy.context.object.color = (0.9, 0.35, 0.1, 1.0)  # a soft orange: mid tones, where sRGB and linear differ most
    settings = scene.render.image_settings
    for name, file_format, layers, depth in (("single", "OPEN_EXR", False, "16"), ("multi", "OPEN_EXR_MULTILAYER", True, "32"),
                                             ("standard", "PNG", False, "8")):
        if hasattr(settings, "media_type"):  # Blender 5.0 sets multilayer by media type
            settings.media_type = "MULTI_LAYER_IMAGE" if layers else "IMAGE"
        settings.file_format, settings.color_mode, settings.color_depth = file_format, "RGBA", depth
        scene.render.filepath = f"{out}/{name}_0001"
        bpy.ops.render.render(write_still=True)
""")


def test_blenders_exr_renders_read_as_its_standard_view_shows_them(tmp_path: Path) -> None:
    pytest.importorskip("bpy")
    done = subprocess.run([sys.executable, "-c", RENDER, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    shown = np.asarray(Image.open(tmp_path / "standard_0001.png")).astype(int)  # straight RGBA, sRGB
    inside = shown[..., 3] == 255
    assert 100 < inside.sum() < inside.size - 100  # the sphere, and transparent film around it
    for name in ("single", "multi"):
        footage = read_footage(tmp_path / f"{name}_0001.exr")
        assert footage.frames.shape == (1, 32, 48, 3) and footage.alpha is not None
        assert (probe_footage(tmp_path / f"{name}_0001.exr").width, probe_footage(tmp_path / f"{name}_0001.exr").height) == (48, 32)
        np.testing.assert_allclose(footage.alpha[0] * 255, shown[..., 3], atol=1.5)
        seen = shown[..., 3] > 64  # the edges too: their colour is unpremultiplied as Blender's PNG stores it
        difference = np.abs(footage.frames[0].astype(int) - shown[..., :3])[seen]
        assert difference.max() <= 2, f"{name}: {difference.max()} levels from Blender's own PNG"
    raw = OpenEXR.File(str(tmp_path / "single_0001.exr")).channels()["RGBA"].pixels.astype(np.float32)
    assert np.abs(np.round(raw[..., :3].clip(0, 1) * 255) - shown[..., :3])[inside].max() > 20  # linear is not what shows


def test_mattes_stay_linear_and_cropped_renders_keep_their_place(tmp_path: Path) -> None:
    matte = np.tile(np.linspace(0, 1, 16, dtype=np.float32), (8, 1))
    with OpenEXR.File({"type": OpenEXR.scanlineimage}, {"Y": matte}) as image:
        image.write(str(tmp_path / "matte_0001.exr"))
    grey = read_footage(tmp_path / "matte_0001.exr").frames[0]
    np.testing.assert_array_equal(grey[..., 0], np.round(matte * 255).astype(np.uint8))  # 0.5 stays mid grey
    window = {"type": OpenEXR.scanlineimage,
              "dataWindow": (np.array([2, 1], np.int32), np.array([5, 3], np.int32)),  # 4 x 3 pixels of an 8 x 6 frame
              "displayWindow": (np.array([0, 0], np.int32), np.array([7, 5], np.int32))}
    half_covered = np.full((3, 4, 4), 0.25, np.float32)  # premultiplied: straight 0.5, half covered
    half_covered[..., 3] = 0.5
    with OpenEXR.File(window, {"RGBA": half_covered}) as image:
        image.write(str(tmp_path / "crop_0001.exr"))
    crop = read_footage(tmp_path / "crop_0001.exr")
    assert crop.frames.shape == (1, 6, 8, 3) and crop.source_size == (8, 6)
    expected_alpha = np.zeros((6, 8), np.float32)
    expected_alpha[1:4, 2:6] = 0.5
    np.testing.assert_allclose(crop.alpha[0], expected_alpha, atol=1 / 255)
    assert (crop.frames[0, 1:4, 2:6] == 188).all()  # sRGB of linear 0.5
    (tmp_path / "broken_0001.exr").write_bytes(b"v/1\x01 not an exr")
    with pytest.raises(VideoError, match=r"broken_0001\.exr: cannot read"):
        read_footage(tmp_path / "broken_0001.exr")
    with OpenEXR.File({"type": OpenEXR.scanlineimage}, {"depth.Z": matte, "normal.X": matte}) as image:
        image.write(str(tmp_path / "passes_0001.exr"))
    with pytest.raises(VideoError, match=r"no RGB, RGBA or one-channel layer \(channels: depth.Z, normal.X\)"):
        read_footage(tmp_path / "passes_0001.exr")
    cut = tmp_path / "cut_0001.exr"  # a frame still being written
    cut.write_bytes((tmp_path / "crop_0001.exr").read_bytes()[:-40])
    with pytest.raises(VideoError, match=r"cut_0001\.exr: cannot read \(the file is incomplete"):
        read_footage(cut)
    window["dataWindow"] = (np.array([0, 0], np.int32), np.array([39, 39], np.int32))  # 1600 pixels shown as 48
    with OpenEXR.File(window, {"RGBA": np.zeros((40, 40, 4), np.float32)}) as image:
        image.write(str(tmp_path / "huge_0001.exr"))
    with pytest.raises(VideoError, match=r"its pixels cover 40x40, but it shows 8x6"):
        probe_footage(tmp_path / "huge_0001.exr")


def test_a_multilayer_exr_gives_its_composite_or_combined_pass(tmp_path: Path) -> None:
    """Of a file's layers (one part, as Blender 4 writes them), the composite, else the Combined pass, else the first
    layer with colour; the other passes are not decoded."""
    def layer(name: str, value: float) -> dict[str, np.ndarray]:
        return {f"{name}.{c}": np.full((4, 4), value if c != "A" else 1.0, np.float32) for c in "RGBA"}

    passes = {**layer("Beauty.AO", 0.1), **layer("Beauty.Combined", 0.2), **layer("Composite.Combined", 0.5)}
    for kept, value in (("Composite.Combined", 0.5), ("Beauty.Combined", 0.2), ("Beauty.AO", 0.1)):  # Beauty: a renamed view layer
        path = tmp_path / f"{kept}_0001.exr"
        with OpenEXR.File({"type": OpenEXR.scanlineimage}, passes) as image:
            image.write(str(path))
        assert read_footage(path).frames[0, 0, 0, 0] == round(255 * (1.055 * value ** (1 / 2.4) - 0.055))
        passes = {k: v for k, v in passes.items() if not k.startswith(kept)}


def test_video_reads_without_openexr_and_an_exr_says_what_it_needs(tmp_path: Path) -> None:
    """OpenEXR is needed only when an EXR is met: a backend environment made before it was a requirement still reads
    video."""
    write_mp4(tmp_path / "clip.mp4", np.full((3, 16, 16, 3), 90, np.uint8), fps=24)
    with OpenEXR.File({"type": OpenEXR.scanlineimage}, {"RGB": np.ones((4, 4, 3), np.float32)}) as image:
        image.write(str(tmp_path / "frame_0001.exr"))
    script = textwrap.dedent("""
        import sys
        sys.modules["OpenEXR"] = None  # not installed
        from backend.io.footage import read_footage
        print(len(read_footage(sys.argv[1] + "/clip.mp4").frames))
        try:
            read_footage(sys.argv[1] + "/frame_0001.exr")
        except ValueError as error:
            print(error)
    """)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).parent.parent)
    assert done.stdout.splitlines()[0] == "3", done.stderr[-2000:]
    assert "reading EXR needs the OpenEXR package (pip install OpenEXR==" in done.stdout
