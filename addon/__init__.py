"""The Blender side of lim4d: preferences, the sidebar panel, and (later) the import operators.

Runs on Blender's own Python: stdlib + numpy, never torch. Talks to the backend process only.
"""

from __future__ import annotations

import bpy

from . import preferences, ui

CLASSES: tuple[type, ...] = (*preferences.CLASSES, *ui.CLASSES)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
