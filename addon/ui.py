"""The lim4d sidebar panel in the 3D Viewport."""

from __future__ import annotations

import bpy

from . import preferences


class VIEW3D_PT_lim4d(bpy.types.Panel):  # noqa: N801 (Blender's naming convention)
    bl_label = "lim4d"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "lim4d"

    def draw(self, context: bpy.types.Context) -> None:
        prefs = preferences.get(context)
        mode = prefs.backend_mode.lower() if prefs else "unconfigured"
        self.layout.label(text=f"Backend: {mode}, not connected", icon="INFO")


CLASSES = (VIEW3D_PT_lim4d,)
