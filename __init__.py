"""lim4d as a Blender extension: the repository root is the extension package.

Blender imports this file; everything Blender-facing lives in ``addon/`` (stdlib + numpy only).
"""

from .addon import register, unregister

__all__ = ["register", "unregister"]
