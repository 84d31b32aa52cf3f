"""What a decoder refuses before and after decoding: too many pixels, NaN and infinite values.

:data:`DEFAULT_MAX_PIXELS` is the decompression-bomb guard, checked from a file's header
before any pixel is decompressed (:func:`check_size`); :func:`pillow_limit` lets that guard,
not Pillow's global one, decide, and keeps Pillow's warning off stderr.
"""

from __future__ import annotations

import contextlib
import re
import threading
import warnings
from collections.abc import Iterator

import numpy as np

from tvdenoise.errors import ImageReadError, InvalidParameterError

#: The largest number of pixels decoded by default (all pages together for a stack): Pillow's
#: own decompression-bomb limit, 2 * 89,478,485, about a 13,400 x 13,400 image. Decoded to
#: float32 RGB that is 2.1 GB, and the solvers need a few such arrays: larger images are far
#: more often a hostile or broken file than a genuine photograph.
DEFAULT_MAX_PIXELS = 178_956_970


def check_max_pixels(max_pixels: int | None) -> None:
    """Refuse a ``max_pixels`` that is neither a positive integer nor None."""
    if max_pixels is None:
        return
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise InvalidParameterError(
            f"max_pixels must be a positive integer or None, got {max_pixels!r}"
        )


def check_size(name: str, shape: tuple[int, ...], max_pixels: int | None) -> None:
    """Refuse to decode more than ``max_pixels`` pixels; ``shape`` is (H, W) or (P, H, W)."""
    count = 1
    for extent in shape:
        count *= int(extent)
    if max_pixels is None or count <= max_pixels:
        return
    if len(shape) == 3:
        size = f"{shape[0]} pages of {shape[2]}x{shape[1]}"
    else:
        size = f"{shape[1]}x{shape[0]}"
    raise ImageReadError(
        f"{name}: image too large: {size} = {count:,} pixels, above the limit of "
        f"{max_pixels:,} (a guard against decompression bombs; raise max_pixels or "
        "--max-pixels if the image is genuine)"
    )


_PILLOW_LIMIT_LOCK = threading.RLock()


@contextlib.contextmanager
def pillow_limit(max_pixels: int | None) -> Iterator[None]:
    """Let our ``max_pixels`` decide instead of Pillow's global limit, and keep Pillow's
    DecompressionBombWarning off stderr (the library does not print)."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with _PILLOW_LIMIT_LOCK:
            pillow_limit = Image.MAX_IMAGE_PIXELS
            lift = pillow_limit is not None and (
                max_pixels is None or max_pixels > 2 * pillow_limit
            )
            if lift:
                Image.MAX_IMAGE_PIXELS = None
            try:
                yield
            finally:
                if lift:
                    Image.MAX_IMAGE_PIXELS = pillow_limit


def pillow_too_large(name: str, max_pixels: int | None, error: Exception) -> ImageReadError:
    """Our message for Pillow's DecompressionBombError, with the size Pillow names."""
    found = re.search(r"\((\d+) pixels\)", str(error))
    size = f"{int(found.group(1)):,} pixels, " if found else ""
    return ImageReadError(
        f"{name}: image too large: {size}above the limit of {max_pixels:,} (a guard against "
        "decompression bombs; raise max_pixels or --max-pixels if the image is genuine)"
    )


def check_finite(name: str, *arrays: np.ndarray | None, nan: bool = False) -> None:
    """Refuse float arrays holding NaN (unless ``nan``) or infinite values, counting them."""
    for array in arrays:
        if array is None or array.dtype.kind != "f":
            continue
        finite = np.isfinite(array)
        if nan and not finite.all():
            infinite = int(np.count_nonzero(np.isinf(array)))
            if infinite:
                raise ImageReadError(
                    f"{name}: float image holds {infinite} infinite values of {array.size}; "
                    "replace them (for example with numpy.nan_to_num) before denoising"
                )
        elif not finite.all():
            bad = int(array.size - np.count_nonzero(finite))
            nans = int(np.count_nonzero(np.isnan(array)))
            raise ImageReadError(
                f"{name}: float image holds {nans} NaN and {bad - nans} infinite values of "
                f"{array.size}; replace them (for example with numpy.nan_to_num) before "
                "denoising, or mask NaN out of the data term (--mask nan; allow_nan=True)"
            )
