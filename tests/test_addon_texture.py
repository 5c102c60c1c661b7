"""The add-on's texture swap in real Blender: the repainted texture replaces the import's own image, keeps its name,
leaves no orphan, and never touches an image the user put in its place."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO

pytest.importorskip("bpy")

SCRIPT = textwrap.dedent("""
    import io, json, sys
    sys.path.insert(0, sys.argv[1])
    import bpy
    import numpy as np
    from PIL import Image
    from lim4d.addon import importer

    def png(colour):
        out = io.BytesIO()
        Image.new("RGB", (8, 8), colour).save(out, "PNG")
        return out.getvalue()

    data = {"vertices": np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32), "faces": np.array([[0, 1, 2]]),
            "uvs": np.array([[0, 0], [1, 0], [0, 1]], np.float32), "texture": png((255, 0, 0))}
    obj = importer.build_object("take1", "job", data, bpy.context.scene, 1)
    node = obj.active_material.node_tree.nodes["Image Texture"]
    report = {"first": list(node.image.pixels[:4])}
    obj[importer.FRAMES_PROP] = 1
    importer.add_frame(obj, 0, data["vertices"])
    report["complete_before_repaint"] = importer.import_complete(obj)  # every frame in, the texture still to come
    importer.replace_texture(obj, png((0, 0, 255)))
    report["complete_after_repaint"] = importer.import_complete(obj)
    report.update(name=node.image.name, packed=node.image.packed_file is not None, pixel=list(node.image.pixels[:4]),
                  images=sorted(i.name for i in bpy.data.images if i.name.startswith("lim4d")))
    node.image = bpy.data.images.new("mine", 4, 4)  # the user's own image in its place
    importer.replace_texture(obj, png((0, 255, 0)))
    report["after_user"] = node.image.name
    # an import saved before images were marked: its image is found by name
    old = importer.build_object("take0", "job0", data, bpy.context.scene, 1)
    del old.active_material.node_tree.nodes["Image Texture"].image[importer.KEY_PROP]
    importer.replace_texture(old, png((0, 255, 0)))
    report["unmarked"] = list(old.active_material.node_tree.nodes["Image Texture"].image.pixels[:3])
    print("REPORT " + json.dumps(report))
""")


def test_a_repainted_texture_replaces_the_imports_own_image_and_no_other(tmp_path: Path) -> None:
    (tmp_path / "lim4d").symlink_to(REPO)  # the extension's package name, as Blender imports it
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=300)
    line = next((x for x in done.stdout.splitlines() if x.startswith("REPORT ")), None)
    assert line is not None, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(line[len("REPORT "):])
    assert report["first"][:3] == [1.0, 0.0, 0.0]
    assert report["pixel"][:3] == [0.0, 0.0, 1.0] and report["packed"]
    assert report["name"] == "lim4d_take1" and report["images"] == ["lim4d_take1"]  # renamed back, the old one gone
    assert report["after_user"] == "mine"
    assert report["unmarked"] == [0.0, 1.0, 0.0]
    # a .blend saved with every frame in but before the repaint resumes; after it, not
    assert not report["complete_before_repaint"] and report["complete_after_repaint"]
