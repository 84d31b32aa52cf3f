"""What is carried from an input file to its output: dpi, ICC profile, EXIF, orientation.

EXIF orientation (and a TIFF's own Orientation tag) is applied on reading (:func:`orient`)
and removed from the carried EXIF block, so an output is not rotated twice. A TIFF's text
tags (Make, Model, Copyright, ...) travel as an EXIF block and back
(:func:`tiff_text_exif`, :func:`exif_text_tags`). Entries that say how to encode rather than
what the image carries (:data:`ENCODING_KEYS`) are kept when a writer refuses the rest.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

EXIF_PREFIX = b"Exif\x00\x00"
ORIENTATION_TAG = 0x0112


def orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Make an array upright given its EXIF/TIFF orientation (1 to 8), as Pillow's
    ``ImageOps.exif_transpose`` does for images."""
    transforms: dict[int, Callable[[np.ndarray], np.ndarray]] = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, k=-1),
        7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
        8: lambda a: np.rot90(a, k=1),
    }
    transform = transforms.get(orientation)
    if transform is None:
        return np.ascontiguousarray(array)
    return np.ascontiguousarray(transform(array))


def pillow_metadata(image: Any, *, carry_exif: bool = True) -> tuple[dict[str, Any], int]:
    """Collect dpi, ICC profile and EXIF of an opened Pillow image, and its orientation."""
    metadata: dict[str, Any] = {}
    info = image.info
    dpi = info.get("dpi")
    if dpi is not None:
        with contextlib.suppress(TypeError, ValueError):
            x_dpi, y_dpi = (float(value) for value in dpi)
            if x_dpi > 0 and y_dpi > 0:
                metadata["dpi"] = (x_dpi, y_dpi)
    icc_profile = info.get("icc_profile")
    if icc_profile:
        metadata["icc_profile"] = bytes(icc_profile)
    orientation = 1
    try:
        exif = image.getexif()
        orientation = int(exif.get(ORIENTATION_TAG, 1))
        if carry_exif and len(exif):
            if orientation != 1:
                del exif[ORIENTATION_TAG]
                metadata["exif"] = exif.tobytes()
            elif isinstance(info.get("exif"), bytes):
                metadata["exif"] = with_exif_prefix(info["exif"])
            else:
                metadata["exif"] = exif.tobytes()
    except Exception:  # corrupt EXIF must not make a readable image unreadable
        metadata.pop("exif", None)
    if orientation not in range(1, 9):
        orientation = 1
    return metadata, orientation


def with_exif_prefix(exif: bytes) -> bytes:
    """WebP and PNG hold the TIFF structure alone; JPEG and our metadata use the prefix."""
    return exif if exif.startswith(EXIF_PREFIX) else EXIF_PREFIX + exif


def tiff_text_exif(tags: Any) -> bytes | None:
    """A TIFF's descriptive text tags (Make, Model, Copyright, ...) as an EXIF block, so
    that they reach JPEG, PNG and WebP outputs as EXIF and TIFF outputs as tags again."""
    from PIL import Image

    exif = Image.Exif()
    for code in TIFF_TEXT_TAGS:
        tag = tags.get(code)
        if tag is None or not isinstance(tag.value, str) or not tag.value:
            continue
        if code == 270 and tag.value.startswith(("{", "ImageJ=", "<?xml", "<OME")):
            continue  # layout notes of tifffile, ImageJ or OME: not about this image
        exif[code] = tag.value
    return exif.tobytes() if len(exif) else None


# Entries of metadata that describe how to encode, not what the image carries.
ENCODING_KEYS = (
    "jpeg_qtables",
    "jpeg_subsampling",
    "webp_lossless",
    "durations",
    "loop",
    "tiff_compression",
)


def carried(metadata: Mapping[str, Any]) -> bool:
    """Whether ``metadata`` holds anything beyond how to encode."""
    return any(key not in ENCODING_KEYS for key in metadata)


def layout_only(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``metadata`` that say how to encode (:data:`ENCODING_KEYS`)."""
    return {key: value for key, value in metadata.items() if key in ENCODING_KEYS}


def dpi_of(metadata: Mapping[str, Any]) -> tuple[float, float] | None:
    """The positive ``(x, y)`` dpi of ``metadata``, or None."""
    dpi = metadata.get("dpi")
    if dpi is None:
        return None
    x_dpi, y_dpi = (float(value) for value in dpi)
    return (x_dpi, y_dpi) if x_dpi > 0 and y_dpi > 0 else None


def pillow_options(metadata: Mapping[str, Any], *, exif: bool = True) -> dict[str, Any]:
    """Pillow's ``save`` options for the dpi, ICC profile and EXIF of ``metadata``."""
    options: dict[str, Any] = {}
    dpi = dpi_of(metadata)
    if dpi is not None:
        options["dpi"] = dpi
    if metadata.get("icc_profile"):
        options["icc_profile"] = bytes(metadata["icc_profile"])
    if exif and metadata.get("exif"):
        options["exif"] = bytes(metadata["exif"])
    return options


# TIFF tags that are also EXIF IFD0 text tags: carried between TIFF and EXIF blocks.
TIFF_TEXT_TAGS = {
    270: "ImageDescription",
    271: "Make",
    272: "Model",
    305: "Software",
    306: "DateTime",
    315: "Artist",
    33432: "Copyright",
}


def exif_text_tags(exif: bytes) -> dict[int, str]:
    """The IFD0 text tags of an EXIF block that a TIFF can hold as its own tags."""
    from PIL import Image

    tags: dict[int, str] = {}
    with contextlib.suppress(Exception):
        parsed = Image.Exif()
        parsed.load(exif)
        for code in TIFF_TEXT_TAGS:
            value = parsed.get(code)
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            if isinstance(value, str) and value and value.isascii():
                tags[code] = value.rstrip("\x00")
    return tags
