"""Extension preferences: where the backend runs (a local Python, or a remote URL + token)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import bpy

# The preferences belong to the extension package (the repository root), one level above us.
EXTENSION_PACKAGE = __package__.rpartition(".")[0] or __package__


class Lim4dPreferences(bpy.types.AddonPreferences):
    bl_idname = EXTENSION_PACKAGE

    backend_mode: bpy.props.EnumProperty(
        name="Backend",
        items=[
            ("LOCAL", "Local", "Start the backend on this machine with the Python below"),
            ("REMOTE", "Remote", "Use a backend already running elsewhere (e.g. a GPU workstation)"),
        ],
        default="LOCAL",
    )
    python_path: bpy.props.StringProperty(
        name="Backend Python", subtype="FILE_PATH",
        description="Python executable of the backend environment (with torch installed)",
    )
    checkpoints: bpy.props.StringProperty(
        name="Checkpoints", subtype="DIR_PATH",
        description="Folder with lrm/, lim/, lrm_canonical/, lim_canonical/ (empty: the bundled tiny models)",
    )
    device: bpy.props.EnumProperty(
        name="Device",
        items=[
            ("AUTO", "Auto", "The GPU when the backend's torch sees one, else the CPU"),
            ("CPU", "CPU", "Always the CPU"),
            ("CUDA", "GPU (CUDA)", "The NVIDIA GPU; the backend refuses to start without one"),
        ],
        default="AUTO",
    )
    remote_url: bpy.props.StringProperty(name="URL", default="http://127.0.0.1:8765")
    remote_token: bpy.props.StringProperty(name="Token", subtype="PASSWORD")

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "backend_mode", expand=True)
        if self.backend_mode == "LOCAL":
            layout.prop(self, "python_path")
            layout.prop(self, "checkpoints")
            layout.prop(self, "device")
            row = layout.row()
            row.operator("lim4d.create_environment", icon="CONSOLE")
            row.operator("lim4d.show_log", icon="TEXT")
        else:
            layout.prop(self, "remote_url")
            layout.prop(self, "remote_token")


def cache_folder() -> Path:
    """Jobs, the backend's token and log: the extension's user folder (kept across updates), else a temp folder."""
    try:
        return Path(bpy.utils.extension_path_user(EXTENSION_PACKAGE, path="cache", create=True)).resolve()
    except (ValueError, AttributeError, OSError):
        folder = Path(tempfile.gettempdir()) / "lim4d"
        folder.mkdir(exist_ok=True)
        return folder


def get(context: bpy.types.Context) -> Lim4dPreferences | None:
    addon = context.preferences.addons.get(EXTENSION_PACKAGE)
    return addon.preferences if addon else None


CLASSES = (Lim4dPreferences,)
