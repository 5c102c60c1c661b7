"""Which Blender clips the add-on sends: a movie clip goes by its file; an image-sequence clip, whose path names
only its first image (the backend would read a one-frame clip), is refused with what to do instead."""

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
    print("REPORT " + json.dumps(report))
""")


def test_a_movie_clip_is_sent_by_its_file_and_an_image_sequence_is_refused(tmp_path: Path) -> None:
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
