"""Which Blender clips the add-on sends: a movie clip goes by its file, an image-sequence clip or strip by its first
image (the backend reads the images numbered on from it, as Blender plays them); a sequence Blender would play
otherwise (a strip whose images skip a number, images lim4d cannot read) is refused with what to do instead. Clips slid along the
timeline (Start Frame, Frame Offset) to sync them are paired as Blender plays them: the job starts where every clip
has started, each view from the file frame it shows there."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import OpenEXR
import pytest
from PIL import Image

from backend.io.video import write_mp4
from conftest import REPO

pytest.importorskip("bpy")

SCRIPT = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, sys.argv[1])
    import bpy
    import lim4d.addon
    from lim4d.addon import operators

    lim4d.addon.register()  # the panel's settings on every scene

    report = {}
    for name in ("movie.mp4", "sequence/0001.png", "sequence/0002.png"):
        clip = bpy.data.movieclips.load(sys.argv[2] + "/" + name)
        report[name] = {"source": clip.source, "sent": operators.clip_file(clip), "frames": clip.frame_duration}
    editor = bpy.context.scene.sequence_editor_create()
    strips = editor.strips if hasattr(editor, "strips") else editor.sequences
    strip = strips.new_image("images", sys.argv[2] + "/sequence/0001.png", 1, 1)
    for number in (2, 3, 4):
        strip.elements.append(f"{number:04d}.png")
    report["strip"] = operators.strip_file(strip)
    strip.elements.pop(2)  # 0001, 0002, 0004: a gap
    for name, check in (("gap", lambda: operators.strip_file(strip)),
                        ("dpx", lambda: operators.check_sequence("renders", sys.argv[2] + "/renders/0001.dpx", [4]))):
        try:
            check()
        except ValueError as error:
            report[name] = str(error)
    renders = bpy.data.movieclips.load(sys.argv[2] + "/renders/0001.exr")  # Blender's own renders
    report["exr"] = {"source": renders.source, "sent": operators.clip_file(renders), "frames": renders.frame_duration}
    strips.remove(strip)
    first, second = (bpy.data.movieclips.load(sys.argv[2] + "/movie.mp4") for _ in range(2))
    report["together"] = operators.clip_starts([first, second])  # both from scene frame 1
    second.frame_start, second.frame_offset = 5, 4  # slid, and its first 4 frames cut: in step still
    report["trimmed"] = operators.clip_starts([first, second])
    second.frame_offset = 0  # slid only: its first frame shows beside the first clip's fifth
    report["slid"] = operators.clip_starts([first, second])
    scene, camera = bpy.context.scene, bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    scene.lim4d.mode, scene.lim4d.frame_start, scene.lim4d.frame_end = "MULTI", 1, 3
    for clip in (first, second):
        binding = scene.lim4d.bindings.add()
        binding.camera, binding.clip = camera, clip
    request = operators.job_request(scene)
    report["request"] = {k: request.get(k) for k in ("frame_start", "frame_end", "view_offsets", "base_frame")}
    movie = strips.new_movie("movie", sys.argv[2] + "/movie.mp4", 1, 7)  # a strip from scene frame 7 ...
    movie.frame_offset_start, movie.select = 2, True  # ... its first 2 frames trimmed: it shows from frame 9
    scene.camera, scene.lim4d.mode, scene.lim4d.source = camera, "MONO", "STRIPS"
    request = operators.job_request(scene)
    report["strip_request"] = {k: request.get(k) for k in ("frame_start", "frame_end", "base_frame", "monocular")}
    movie.select = False
    short = strips.new_image("short", sys.argv[2] + "/sequence/0001.png", 1, 1)  # 2 of the 4 images numbered on
    short.elements.append("0002.png")
    short.select = True
    request = operators.job_request(scene)
    report["short_request"] = {k: request.get(k) for k in ("views", "frame_start", "frame_end", "base_frame")}
    trimmed = bpy.data.movieclips.load(sys.argv[2] + "/sequence/0001.png")
    trimmed.frame_offset = 1  # a sequence clip whose first image is cut
    report["trimmed_sequence"] = operators.clip_file(trimmed)
    strips.remove(movie)
    print("REPORT " + json.dumps(report))
""")


# Blender 4.2 LTS too, as in test_addon.py (LIM4D_BPY_42: a Python 3.11 with bpy 4.2)
BLENDERS = [sys.executable] + ([os.environ["LIM4D_BPY_42"]] if os.environ.get("LIM4D_BPY_42") else [])


@pytest.mark.parametrize("blender", BLENDERS, ids=lambda p: "bpy" if p == sys.executable else "bpy-4.2")
def test_clips_go_by_file_or_first_image_and_slid_clips_are_paired_as_blender_plays_them(tmp_path: Path,
                                                                                         blender: str) -> None:
    (tmp_path / "lim4d").symlink_to(REPO)  # the extension's package name, as Blender imports it
    write_mp4(tmp_path / "movie.mp4", np.full((12, 32, 32, 3), 200, np.uint8), fps=24)
    (tmp_path / "sequence").mkdir()
    for frame in range(1, 5):
        Image.new("RGB", (32, 32), (frame * 40, 0, 0)).save(tmp_path / "sequence" / f"{frame:04d}.png")
    (tmp_path / "renders").mkdir()
    for frame in range(1, 4):
        with OpenEXR.File({"type": OpenEXR.scanlineimage}, {"RGBA": np.full((32, 32, 4), frame / 4, np.float32)}) as exr:
            exr.write(str(tmp_path / "renders" / f"{frame:04d}.exr"))
    done = subprocess.run([blender, "-c", SCRIPT, str(tmp_path), str(tmp_path)], capture_output=True, text=True,
                          timeout=300)
    line = next((x for x in done.stdout.splitlines() if x.startswith("REPORT ")), None)
    assert line is not None, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(line[len("REPORT "):])
    assert report["movie.mp4"] == {"source": "MOVIE", "sent": str(tmp_path / "movie.mp4"), "frames": 12}
    for first, frames in ((1, 4), (2, 3)):  # Blender plays the images numbered on from the one a clip names
        name = f"sequence/{first:04d}.png"
        assert report[name] == {"source": "SEQUENCE", "sent": str(tmp_path / name), "frames": frames}
    assert report["strip"] == str(tmp_path / "sequence" / "0001.png")
    assert "not the ones numbered one after another from 0001.png" in report["gap"]
    assert ".dpx images" in report["dpx"] and "PNG or EXR" in report["dpx"]
    assert report["exr"] == {"source": "SEQUENCE", "sent": str(tmp_path / "renders" / "0001.exr"), "frames": 3}
    # the scene frame where both clips have started, and the file frame each shows there
    assert report["together"] == [1, [0, 0]] and report["trimmed"] == [5, [4, 4]] and report["slid"] == [5, [4, 0]]
    # frames 1-3 of the job from there: the offset both share moves the range, the rest goes per view
    assert report["request"] == {"frame_start": 1, "frame_end": 3, "view_offsets": [4, 0], "base_frame": 6}
    # a trimmed strip: the job starts where the strip shows, from the first frame it shows
    assert report["strip_request"] == {"frame_start": 3, "frame_end": 5, "base_frame": 10, "monocular": True}
    # an image strip of the first 2 of 4 numbered images: the job stops where the strip does
    first_image = str(tmp_path / "sequence" / "0001.png")
    assert report["short_request"] == {"views": [first_image], "frame_start": 1, "frame_end": 2, "base_frame": 2}
    assert report["trimmed_sequence"] == first_image
