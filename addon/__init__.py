"""The Blender side of lim4d: preferences, panels, the import pipeline and export.

Runs on Blender's own Python: stdlib + numpy, never torch. Talks to the backend process only,
through backend/client.py and the shared vocabulary in backend/protocol.py.
"""

from __future__ import annotations

import bpy

from . import exporting, operators, preferences, properties, ui

CLASSES: tuple[type, ...] = (*preferences.CLASSES, *properties.CLASSES, *operators.CLASSES, *exporting.CLASSES,
                             *ui.CLASSES)


@bpy.app.handlers.persistent
def _stop_before_load(_dummy: object) -> None:
    """The imports in flight belong to the file being closed; the reopened file resumes its own."""
    from .session import SESSIONS

    for session in SESSIONS.values():
        session.stop.set()
    SESSIONS.clear()


@bpy.app.handlers.persistent
def _resume_after_load(_dummy: object) -> None:
    """A reopened .blend (or a restart after a crash) finishes the imports it holds."""
    operators.resume_imports()


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    properties.register()
    bpy.app.handlers.load_pre.append(_stop_before_load)
    bpy.app.handlers.load_post.append(_resume_after_load)


def unregister() -> None:
    for handlers, handler in ((bpy.app.handlers.load_pre, _stop_before_load), (bpy.app.handlers.load_post, _resume_after_load)):
        if handler in handlers:
            handlers.remove(handler)
    if bpy.app.timers.is_registered(operators._timer):
        bpy.app.timers.unregister(operators._timer)
    from .backend_link import LINK

    LINK.stop()
    properties.unregister()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
