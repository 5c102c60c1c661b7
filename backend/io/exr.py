"""OpenEXR images (Blender's renders, single-layer or multilayer) as the 8-bit RGBA the rest of footage reads.

A colour EXR holds scene-linear light with premultiplied alpha; it is read as Blender's Standard view shows it:
unpremultiplied, then sRGB-encoded (AgX or Filmic looks are not applied: render to PNG for those). A one-channel EXR
(a matte from the compositor) is data and is kept linear, so a mask's 0.5 stays 0.5. A multilayer EXR gives its
Combined pass (``ViewLayer.Combined``), else its first RGB layer. Pixels outside a cropped render's data window are
transparent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import OpenEXR


class ExrError(ValueError):
    pass


def exr_size(file: Path) -> tuple[int, int]:
    """(width, height) of the image's display window, from its header."""
    with _opened(file, header_only=True) as image:
        (x0, y0), (x1, y1) = image.header()["displayWindow"]
        return int(x1 - x0 + 1), int(y1 - y0 + 1)


def exr_rgba(file: Path) -> np.ndarray:
    """The image as 8-bit straight RGBA (H, W, 4) over its display window."""
    with _opened(file) as image:
        header, layers = image.header(), image.channels()
        windows = [tuple(int(v) for corner in header[w] for v in corner) for w in ("dataWindow", "displayWindow")]
        name = _layer(layers)
        if name is None:
            raise ExrError(f"{file}: no RGB, RGBA or one-channel layer (layers: {', '.join(layers) or 'none'})")
        pixels = np.array(layers[name].pixels, dtype=np.float32)  # a copy: the file's buffers go when it closes
    if pixels.ndim == 2:  # data, not light: kept linear
        grey = pixels.clip(0, 1)
        rgba = np.dstack([grey, grey, grey, np.ones_like(grey)])
    else:
        coverage = pixels[..., 3].clip(0, 1) if pixels.shape[-1] == 4 else np.ones(pixels.shape[:2], np.float32)
        colour = np.where(coverage[..., None] > 0, pixels[..., :3] / np.maximum(coverage, 1e-6)[..., None], 0)
        rgba = np.dstack([_srgb(colour.clip(0, 1)), coverage])
    return _on_display_window(np.round(rgba * 255).astype(np.uint8), *windows)


def _opened(file: Path, header_only: bool = False) -> OpenEXR.File:
    try:
        return OpenEXR.File(str(file), header_only=header_only)
    except Exception as error:  # the bindings raise plain Exceptions for unreadable files
        raise ExrError(f"{file}: cannot read ({error})") from None


def _layer(layers: dict) -> str | None:
    """Which layer to read: the top-level RGBA/RGB, Blender's Combined pass, another RGB layer, or a lone channel."""
    def colour(name: str) -> bool:
        return np.ndim(layers[name].pixels) == 3 and np.shape(layers[name].pixels)[-1] in (3, 4)

    for name in ("RGBA", "RGB"):
        if name in layers and colour(name):
            return name
    ranked = sorted((n for n in layers if colour(n)), key=lambda n: not n.endswith("Combined"))
    if ranked:
        return ranked[0]
    singles = [n for n in layers if np.ndim(layers[n].pixels) == 2]
    return singles[0] if len(singles) == 1 else None


def _srgb(linear: np.ndarray) -> np.ndarray:
    """The sRGB transfer (IEC 61966-2-1)."""
    return np.where(linear <= 0.0031308, linear * 12.92, 1.055 * np.power(linear, 1 / 2.4) - 0.055)


def _on_display_window(rgba: np.ndarray, data: tuple[int, ...], display: tuple[int, ...]) -> np.ndarray:
    """A cropped render's pixels (its data window, x0 y0 x1 y1) placed in its display window; the rest transparent."""
    if data == display:
        return rgba
    (dx0, dy0, dx1, dy1), (wx0, wy0, wx1, wy1) = data, display
    canvas = np.zeros((wy1 - wy0 + 1, wx1 - wx0 + 1, 4), np.uint8)
    x0, y0, x1, y1 = max(dx0, wx0), max(dy0, wy0), min(dx1, wx1), min(dy1, wy1)
    if x0 <= x1 and y0 <= y1:
        canvas[y0 - wy0:y1 - wy0 + 1, x0 - wx0:x1 - wx0 + 1] = rgba[y0 - dy0:y1 - dy0 + 1, x0 - dx0:x1 - dx0 + 1]
    return canvas
