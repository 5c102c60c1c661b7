"""The extension package: Blender's own validator, build, install and register in real Blender."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO

bpy_spec = pytest.importorskip("bpy")
# bpy.__file__ is .../bpy/<version>/scripts/modules/bpy/__init__.py
SCRIPTS = Path(bpy_spec.__file__).parents[2]
BLENDER_EXT = SCRIPTS / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
TAGS_MODULE = SCRIPTS / "modules" / "_bpy_internal" / "extensions" / "tags.py"


def _blender_ext(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BLENDER_EXT), *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def valid_tags(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Blender's own list of extension tags, in the JSON form the validator takes."""
    namespace: dict = {}
    exec(TAGS_MODULE.read_text(), namespace)
    path = tmp_path_factory.mktemp("tags") / "tags.json"
    path.write_text(json.dumps({"add-on": sorted(namespace["addons"]), "theme": sorted(namespace["themes"])}))
    return path


def test_manifest_passes_blenders_validator(valid_tags: Path) -> None:
    done = _blender_ext("validate", "--valid-tags", str(valid_tags), str(REPO))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success" in done.stdout


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('tagline = "Turn video clips into tracked, textured 4D meshes"', 'tagline = "Ends with a period."'),
        ('tags = ["Animation", "Mesh", "Import-Export"]', 'tags = ["Animation", "Not A Tag"]'),
        ('id = "lim4d"', 'id = "lim 4d"'),
    ],
)
def test_validator_rejects_a_broken_manifest(tmp_path: Path, valid_tags: Path, old: str, new: str) -> None:
    manifest = (REPO / "blender_manifest.toml").read_text()
    assert old in manifest
    (tmp_path / "blender_manifest.toml").write_text(manifest.replace(old, new))
    shutil.copy(REPO / "__init__.py", tmp_path / "__init__.py")
    done = _blender_ext("validate", "--valid-tags", str(valid_tags), str(tmp_path))
    assert done.returncode != 0


def test_built_extension_installs_and_registers(tmp_path: Path) -> None:
    done = _blender_ext("build", "--source-dir", str(REPO), "--output-dir", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    archive = next(tmp_path.glob("lim4d-*.zip"))
    names = subprocess.run(["unzip", "-Z1", str(archive)], capture_output=True, text=True).stdout.split()
    assert "blender_manifest.toml" in names and "addon/__init__.py" in names
    assert not [n for n in names if n.startswith(("tests/", ".venv/", "benchmarks/", ".ci/"))]
    script = textwrap.dedent(f"""
        import bpy
        bpy.ops.extensions.package_install_files(
            repo="user_default", filepath={str(archive)!r}, enable_on_install=True)
        assert "bl_ext.user_default.lim4d" in bpy.context.preferences.addons, "not enabled"
        assert hasattr(bpy.types, "VIEW3D_PT_lim4d"), "panel not registered"
        prefs = bpy.context.preferences.addons["bl_ext.user_default.lim4d"].preferences
        assert prefs.backend_mode == "LOCAL"
        bpy.ops.preferences.addon_disable(module="bl_ext.user_default.lim4d")
        assert not hasattr(bpy.types, "VIEW3D_PT_lim4d"), "panel left behind"
        print("EXTENSION-OK")
    """)
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(tmp_path / "user")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=180)
    assert "EXTENSION-OK" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]


def _python_313() -> str | None:
    found = shutil.which("python3.13")
    candidates = [found] if found else []
    candidates += sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.13*/bin/python3.13"))
    for candidate in candidates:
        if subprocess.run([candidate, "--version"], capture_output=True).returncode == 0:
            return candidate
    return None


def test_addon_code_runs_on_python_313() -> None:
    """Blender 5.x ships Python 3.13: the add-on compiles there, and the stdlib-only client and protocol it
    shares with the backend import and work (3.11 is covered by every other test)."""
    python = _python_313()
    if python is None:
        pytest.skip("no Python 3.13 on this machine")
    script = textwrap.dedent("""
        import pathlib
        for f in sorted(pathlib.Path("addon").glob("*.py")):
            compile(f.read_text(), str(f), "exec")
        from backend.client import Client, BackendError
        from backend.protocol import Event, JobState, QUALITY_PRESETS
        try:
            Client("http://127.0.0.1:9", "token").health()
        except BackendError as error:
            print("CLIENT-OK", error.status)
    """)
    done = subprocess.run([python, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert "CLIENT-OK None" in done.stdout, done.stdout + done.stderr
