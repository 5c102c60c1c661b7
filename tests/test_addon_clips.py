"""Which Blender clips the add-on sends: a movie clip goes by its file; an image-sequence clip, whose path names
only its first image (the backend would read a one-frame clip), is refused with what to do instead; so are the views
of a multi-view job whose clips start at different scene frames (the backend would pair them out of step)."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.io.video import write_mp4
from conftest import REPO

pytest.importorskip("bpy")

SCRIPT = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, sys.argv[1])
    import bpy
    from lim4d.addon import operators

    report = {}
    for name in ("movie.mp4", "sequence/0001.png"):
        clip = bpy.data.movieclips.load(sys.argv[2] + "/" + name)
        try:
            report[name] = {"source": clip.source, "sent": operators.clip_file(clip)}
        except ValueError as error:
            report[name] = {"source": clip.source, "error": str(error)}
    first, second = (bpy.data.movieclips.load(sys.argv[2] + "/movie.mp4") for _ in range(2))
    operators.check_in_step([first, second])  # both from scene frame 1
    second.frame_start, second.frame_offset = 5, 4  # slid, and its first 4 frames cut: in step still
    operators.check_in_step([first, second])
    second.frame_offset = 0
    try:
        operators.check_in_step([first, second])
    except ValueError as error:
        report["out_of_step"] = str(error)
    print("REPORT " + json.dumps(report))
""")


def test_movie_clips_are_sent_by_file_and_image_sequences_and_clips_out_of_step_are_refused(tmp_path: Path) -> None:
    (tmp_path / "lim4d").symlink_to(REPO)  # the extension's package name, as Blender imports it
    write_mp4(tmp_path / "movie.mp4", np.full((4, 32, 32, 3), 200, np.uint8), fps=24)
    (tmp_path / "sequence").mkdir()
    for frame in range(1, 5):
        Image.new("RGB", (32, 32), (frame * 40, 0, 0)).save(tmp_path / "sequence" / f"{frame:04d}.png")
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), str(tmp_path)], capture_output=True, text=True,
                          timeout=300)
    line = next((x for x in done.stdout.splitlines() if x.startswith("REPORT ")), None)
    assert line is not None, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(line[len("REPORT "):])
    assert report["movie.mp4"] == {"source": "MOVIE", "sent": str(tmp_path / "movie.mp4")}
    sequence = report["sequence/0001.png"]
    assert sequence["source"] == "SEQUENCE" and "image sequence" in sequence["error"] and "sent" not in sequence
    assert "different scene frames" in report["out_of_step"] and "at 5" in report["out_of_step"]
