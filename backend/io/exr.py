"""OpenEXR images (Blender's renders, single-layer or multilayer) as the 8-bit RGBA the rest of footage reads.

A colour EXR holds scene-linear light with premultiplied alpha; it is read as Blender's Standard view shows it:
unpremultiplied, then sRGB-encoded (AgX or Filmic looks are not applied: render to PNG for those). A one-channel EXR
(a matte from the compositor, a BW render) is kept linear, so a mask's 0.5 stays 0.5. A multilayer EXR gives its
composite (``Composite.Combined``) or Combined pass (``ViewLayer.Combined``), else its first RGB layer; of a
multi-part file (Blender 5 writes a part per pass, a stereo render a part per eye) the first part. Only the channels
read are decoded. Pixels outside a cropped render's data window are transparent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

MAX_DATA_SHARE = 4  # a data window may hold at most this many times its display window's pixels (a tiny file
# whose data window is 6000² decodes to gigabytes, past the size limit its display window passed)


class ExrError(ValueError):
    pass


def exr_size(file: Path) -> tuple[int, int]:
    """(width, height) of the image's display window, from its header."""
    header = _opened(file).header()
    return _size(header["displayWindow"])


def exr_rgba(file: Path) -> np.ndarray:
    """The image as 8-bit straight RGBA (H, W, 4) over its display window."""
    import Imath

    image = _opened(file)
    header = image.header()
    names = _channels(file, sorted(header["channels"]))
    width, height = _size(header["dataWindow"])
    try:
        raw = image.channels(names, Imath.PixelType(Imath.PixelType.FLOAT))
    except Exception as error:  # the bindings raise plain Exceptions (TypeError, OSError) for damaged files
        raise ExrError(f"{file}: cannot read ({error})") from None
    planes = [np.frombuffer(data, np.float32).reshape(height, width) for data in raw]
    if len(planes) == 1:  # data, not light: kept linear
        grey = np.nan_to_num(planes[0]).clip(0, 1)
        rgba = np.dstack([grey, grey, grey, np.ones_like(grey)])
    else:
        colour = np.nan_to_num(np.dstack(planes[:3]))
        coverage = np.nan_to_num(planes[3]).clip(0, 1) if len(planes) == 4 else np.ones((height, width), np.float32)
        colour /= np.maximum(coverage, 1e-6)[..., None]
        colour[coverage == 0] = 0
        rgba = np.dstack([_srgb(colour.clip(0, 1, out=colour)), coverage])
    return _on_display_window(np.round(rgba * 255).astype(np.uint8), _corners(header["dataWindow"]),
                              _corners(header["displayWindow"]))


def _opened(file: Path):
    """The file's first part, checked: whole, and its data window not far larger than what it shows."""
    try:
        import OpenEXR
    except ImportError:
        raise ExrError(f"{file}: reading EXR needs the OpenEXR package (pip install OpenEXR==3.5.3)") from None
    try:
        image = OpenEXR.InputFile(str(file))
        header = image.header()
        complete = image.isComplete()
    except Exception as error:  # the bindings raise plain Exceptions for unreadable files
        raise ExrError(f"{file}: cannot read ({error})") from None
    if not complete:
        raise ExrError(f"{file}: cannot read (the file is incomplete: still being written, or cut short)")
    data, shown = _size(header["dataWindow"]), _size(header["displayWindow"])
    if data[0] * data[1] > MAX_DATA_SHARE * shown[0] * shown[1]:
        raise ExrError(f"{file}: its pixels cover {data[0]}x{data[1]}, but it shows {shown[0]}x{shown[1]} (a data "
                       f"window over {MAX_DATA_SHARE} times the image is refused)")
    return image


def _channels(file: Path, names: list[str]) -> list[str]:
    """The channels to read, R G B (A) or one: the top level's, the composite's or Combined pass's of a multilayer
    file, else the first layer with R, G and B; a lone channel (a matte) when there is no colour."""
    layers: dict[str, set[str]] = {}
    for name in names:
        layer, _, channel = name.rpartition(".")
        layers.setdefault(layer, set()).add(channel)
    colour = [layer for layer, channels in layers.items() if {"R", "G", "B"} <= channels]

    def rank(layer: str) -> tuple[bool, bool, bool, str]:
        parts = layer.split(".")
        return (layer != "", parts[0] != "Composite", "Combined" not in parts, layer)

    if colour:
        layer = min(colour, key=rank)
        prefix = f"{layer}." if layer else ""
        return [prefix + c for c in ("R", "G", "B", "A") if c in layers[layer]]
    if len(names) == 1:
        return names
    raise ExrError(f"{file}: no RGB, RGBA or one-channel layer (channels: {', '.join(names) or 'none'})")


def _corners(box) -> tuple[int, int, int, int]:
    return int(box.min.x), int(box.min.y), int(box.max.x), int(box.max.y)


def _size(box) -> tuple[int, int]:
    x0, y0, x1, y1 = _corners(box)
    return x1 - x0 + 1, y1 - y0 + 1


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
