"""The lim4d panels: the 3D Viewport sidebar and the Movie Clip Editor sidebar show the same controls."""

from __future__ import annotations

import bpy

from .backend_link import LINK


def draw_panel(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    settings = context.scene.lim4d
    row = layout.row(align=True)
    row.label(text=f"Backend: {LINK.status_line()}", icon="LINKED" if LINK.health else "UNLINKED")
    row.operator("lim4d.start_backend", text="", icon="FILE_REFRESH")
    row.operator("lim4d.show_log", text="", icon="TEXT")

    box = layout.box()
    box.prop(settings, "mode", expand=True)
    if settings.mode == "MULTI":
        for index, binding in enumerate(settings.bindings):
            line = box.row(align=True)
            line.label(text=f"{index + 1}")
            line.prop(binding, "camera", text="")
            line.prop(binding, "clip", text="")
            line.prop(binding, "mask", text="", icon="MOD_MASK")
        line = box.row(align=True)
        line.operator("lim4d.binding_add", icon="ADD")
        line.operator("lim4d.binding_remove", icon="REMOVE", text="")
    else:
        box.prop(settings, "source")
        if settings.source == "FILE":
            box.prop(settings, "filepath")
        box.prop(settings, "mask", icon="MOD_MASK")
    frames = box.row(align=True)
    frames.prop(settings, "frame_start")
    frames.prop(settings, "frame_end")
    box.prop(settings, "stride")
    box.prop(settings, "retime")
    box.prop(settings, "quality")
    box.prop(settings, "texture_size")

    busy = settings.state in ("queued", "running", "cancelling")
    if busy:
        eta = f", {settings.eta_s:.0f} s left" if settings.eta_s >= 0 else ""
        layout.progress(factor=settings.fraction, type="BAR",
                        text=f"{settings.stage or settings.state}{eta} ({settings.frames_imported}/{settings.frames_expected})")
        layout.operator("lim4d.cancel", icon="CANCEL")
    else:
        layout.operator("lim4d.reconstruct", icon="PLAY")
        if settings.state in ("failed", "cancelled") and settings.last_request:
            layout.operator("lim4d.retry", icon="FILE_REFRESH")
    if settings.error:
        layout.label(text=settings.error, icon="ERROR")
    layout.operator("lim4d.export", icon="EXPORT")


class Lim4dPanel:
    """The same panel in every editor that lists it (the subclasses name the editor)."""

    bl_label = "lim4d"
    bl_region_type = "UI"
    bl_category = "lim4d"

    def draw(self, context: bpy.types.Context) -> None:
        draw_panel(self.layout, context)


class VIEW3D_PT_lim4d(Lim4dPanel, bpy.types.Panel):  # noqa: N801 (Blender's naming convention)
    bl_space_type = "VIEW_3D"


class CLIP_PT_lim4d(Lim4dPanel, bpy.types.Panel):  # noqa: N801
    bl_space_type = "CLIP_EDITOR"


CLASSES = (VIEW3D_PT_lim4d, CLIP_PT_lim4d)
