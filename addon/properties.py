"""What the panel edits (per scene, saved with the .blend) and the live status of the current import."""

from __future__ import annotations

import bpy


def _is_camera(_self: bpy.types.PropertyGroup, obj: bpy.types.Object) -> bool:
    return obj.type == "CAMERA"


class Lim4dCameraBinding(bpy.types.PropertyGroup):
    camera: bpy.props.PointerProperty(name="Camera", type=bpy.types.Object, poll=_is_camera)
    clip: bpy.props.PointerProperty(name="Clip", type=bpy.types.MovieClip)
    mask: bpy.props.PointerProperty(name="Mask", type=bpy.types.MovieClip,
                                    description="Optional: this view's mask clip (white = object), used instead of the "
                                                "automatic matte (busy backgrounds, keyed or rotoscoped footage)")


class Lim4dSettings(bpy.types.PropertyGroup):
    source: bpy.props.EnumProperty(name="Source", items=[
        ("CLIP", "Movie Clip", "The active movie clip"),
        ("STRIPS", "Strips", "The selected movie strips of the sequencer"),
        ("FILE", "File", "A video file"),
    ], default="CLIP")
    filepath: bpy.props.StringProperty(name="Video", subtype="FILE_PATH")
    mask: bpy.props.PointerProperty(name="Mask", type=bpy.types.MovieClip,
                                    description="Optional: the clip's mask (white = object), used instead of the automatic matte")
    mode: bpy.props.EnumProperty(name="Views", items=[
        ("MONO", "Monocular", "One clip, seen by the scene camera"),
        ("MULTI", "Multi-view", "Several clips, each bound to the Blender camera that filmed it"),
    ], default="MULTI")
    bindings: bpy.props.CollectionProperty(type=Lim4dCameraBinding)
    binding_index: bpy.props.IntProperty()
    frame_start: bpy.props.IntProperty(name="Start", min=0, description="First clip frame (0-based)")
    frame_end: bpy.props.IntProperty(name="End", min=0, description="Clip frame after the last (0: to the end)")
    stride: bpy.props.IntProperty(name="Keyframe Stride", default=4, min=1, max=64)
    retime: bpy.props.FloatProperty(name="Retime", default=1.0, min=1.0, max=16.0,
                                    description="Output frames per input frame: in-betweens from LIM for slow motion")
    quality: bpy.props.EnumProperty(name="Quality", items=[
        ("preview", "Preview", "Fast: fewer faces, smaller texture"),
        ("final", "Final", "Full detail"),
    ], default="final")
    texture_size: bpy.props.IntProperty(name="Texture", default=0, min=0, max=4096, description="0: the preset's size")
    last_request: bpy.props.StringProperty(options={"HIDDEN"})  # JSON, for Retry

    # status of the current import (shown in the panel)
    job_id: bpy.props.StringProperty(options={"HIDDEN"})
    import_key: bpy.props.StringProperty(options={"HIDDEN"})
    state: bpy.props.StringProperty(name="State", default="idle")
    stage: bpy.props.StringProperty(name="Stage")
    fraction: bpy.props.FloatProperty(name="Progress", subtype="FACTOR", min=0, max=1)
    eta_s: bpy.props.FloatProperty(name="ETA", default=-1)
    error: bpy.props.StringProperty(name="Error")
    frames_imported: bpy.props.IntProperty()
    frames_expected: bpy.props.IntProperty()


CLASSES = (Lim4dCameraBinding, Lim4dSettings)


def register() -> None:
    bpy.types.Scene.lim4d = bpy.props.PointerProperty(type=Lim4dSettings)


def unregister() -> None:
    del bpy.types.Scene.lim4d
