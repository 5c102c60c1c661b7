"""lim4d's reconstruction backend. Importing the package loads nothing heavy: the add-on reads protocol.py."""

__version__ = "0.1.0"  # the extension's version too (blender_manifest.toml); a test keeps them equal
