"""NumPy ``.npy`` arrays, read with ``allow_pickle=False`` (a file never runs code).

``(H, W)`` and ``(H, W, C)`` arrays with ``C`` from 1 to 4 are one image (the last channel
of 2 and 4 is alpha); ``(P, H, W)`` and ``(P, H, W, C)`` are stacks.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np

from tvdenoise.errors import ImageReadError
from tvdenoise.io.common import Decoded, Stacked, with_alpha
from tvdenoise.io.limits import check_size


def decode(data: bytes, image_format: str, name: str, max_pixels: int | None) -> Decoded:
    """Decode an ``(H, W)`` or ``(H, W, C)`` array."""
    pixels, alpha = _read_array(data, name, max_pixels, stack=False)
    return pixels[0], None if alpha is None else alpha[0], {}, 1


def decode_pages(data: bytes, image_format: str, name: str, max_pixels: int | None) -> Stacked:
    """Decode a ``(P, H, W)`` or ``(P, H, W, C)`` array (or one image) as its pages."""
    pixels, alpha = _read_array(data, name, max_pixels, stack=True)
    return Stacked(pixels, alpha)


def _read_array(
    data: bytes, name: str, max_pixels: int | None, *, stack: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a ``.npy`` array (never pickles) as pages ``(P, H, W[, 3])`` and alpha."""
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
    except Exception:
        raise ImageReadError(f"{name}: cannot decode NPY file (truncated or corrupt)") from None
    if dtype.hasobject or dtype.kind not in "buif":
        raise ImageReadError(
            f"{name}: NPY array of dtype {dtype} is not an image (integer, boolean or float "
            "values are)"
        )
    channels_last = len(shape) >= 3 and 1 <= shape[-1] <= 4
    if len(shape) == 2:
        pages_shape: tuple[int, ...] = (1, *shape)
    elif len(shape) == 3 and channels_last:
        pages_shape = (1, *shape)
    elif stack and (len(shape) == 3 or (len(shape) == 4 and channels_last)):
        pages_shape = tuple(shape)
    else:
        expected = (
            "(P, H, W), (P, H, W, C), (H, W) or (H, W, C) with C from 1 to 4"
            if stack
            else "(H, W) or (H, W, C) with C from 1 to 4; read stacks with load_stack"
        )
        raise ImageReadError(f"{name}: NPY array of shape {tuple(shape)} is not {expected}")
    if 0 in pages_shape:
        raise ImageReadError(f"{name}: NPY array of shape {tuple(shape)} is empty")
    check_size(name, pages_shape[:3] if pages_shape[0] > 1 else pages_shape[1:3], max_pixels)
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception:
        raise ImageReadError(f"{name}: cannot decode NPY file (truncated or corrupt)") from None
    array = np.ascontiguousarray(array.reshape(pages_shape))
    if array.dtype.byteorder not in ("=", "|"):
        array = array.astype(array.dtype.newbyteorder("="))
    alpha: np.ndarray | None = None
    if array.ndim == 4:
        if array.shape[-1] in (2, 4):
            alpha = np.ascontiguousarray(array[..., -1])
            array = array[..., :-1]
        if array.shape[-1] == 1:
            array = array[..., 0]
    return np.ascontiguousarray(array), alpha


def encode(
    image_format: str,
    pages: np.ndarray,
    alpha: np.ndarray | None,
    metadata: Mapping[str, Any],
    quality: int | None,
) -> bytes:
    """Save the pages (one image as ``(H, W[, C])``) as ``.npy``, alpha last."""
    array = pages[0] if pages.shape[0] == 1 else pages
    if alpha is not None:
        array = with_alpha(array, alpha[0] if pages.shape[0] == 1 else alpha)
    elif array.ndim == 3 and pages.ndim == 3 and array.shape[-1] <= 4:
        # (P, H, W) with W <= 4 would read back as one (H, W, C) image: say "grey" explicitly.
        array = array[..., None]
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()
