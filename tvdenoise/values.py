"""Pixel values between a file's dtype and the float scale the denoiser works on (numpy only).

Integer images are scaled to [0, 1] by their dtype's maximum (255, 65535) and back
(:func:`to_float`, :func:`from_float`); float images spanning more than [0, 1] are mapped to
it and back by a :class:`ValueRange` (:func:`to_unit_range`, :func:`from_unit_range`), so
``weight`` means the same for every kind of image (CONVENTIONS.md, "Values"). The maths and
the file readers and writers both use this module; it imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InvalidParameterError

__all__ = [
    "ValueRange",
    "convert_dtype",
    "from_float",
    "from_float_planes",
    "from_unit_range",
    "planes_apply",
    "to_float",
    "to_float_planes",
    "to_unit_range",
    "value_range",
]


def to_float(pixels: np.ndarray) -> np.ndarray:
    """Convert pixel values to floats, scaling integers to [0, 1] by their dtype's maximum.

    ``uint8`` is divided by 255, ``uint16`` by 65535 (signed integers by their positive
    maximum, so negative values map to [-1, 0)); the result is ``float32``, or ``float64``
    for integers wider than 16 bits, which ``float32`` cannot hold exactly. Booleans become
    0 and 1. ``float32`` and ``float64`` arrays are returned as they are (not copied, not
    clipped); ``float16`` becomes ``float32``.

    Parameters
    ----------
    pixels : numpy.ndarray
        Any shape; integer, boolean or float dtype.

    Returns
    -------
    numpy.ndarray
        The values as floats, same shape.

    Raises
    ------
    InvalidParameterError
        If ``pixels`` has another dtype (complex, object, ...).

    See Also
    --------
    from_float : the inverse.

    Examples
    --------
    >>> import numpy as np
    >>> to_float(np.array([0, 51, 255], dtype=np.uint8))
    array([0. , 0.2, 1. ], dtype=float32)
    """
    pixels = np.asarray(pixels)
    kind = pixels.dtype.kind
    if kind == "b":
        return pixels.astype(np.float32)
    if kind in "ui":
        maximum = float(np.iinfo(pixels.dtype).max)
        if pixels.dtype.itemsize <= 2:
            return pixels.astype(np.float32) / np.float32(maximum)
        return pixels.astype(np.float64) / maximum
    if kind == "f":
        if pixels.dtype in (np.float32, np.float64):
            return pixels
        return pixels.astype(np.float32)
    raise InvalidParameterError(
        f"pixels must have an integer, boolean or float dtype, got {pixels.dtype}"
    )


#: Values converted per block by :func:`from_float` (2 MiB of float64).
FROM_FLOAT_BLOCK = 1 << 18


def from_float(values: np.ndarray, dtype: np.dtype | type | str) -> np.ndarray:
    """Convert float values to ``dtype``, the inverse of :func:`to_float`.

    For integer dtypes the values are multiplied by the dtype's maximum (255, 65535, ...),
    rounded half to even, and clipped to the dtype's range; NaN becomes 0. For a boolean
    dtype, values above 0.5 become True. For float dtypes the values are only cast (no
    clipping, so out-of-range results of a solver stay visible).

    Parameters
    ----------
    values : numpy.ndarray
        Any shape, float (or anything numpy can cast to float).
    dtype : numpy.dtype or type or str
        The target dtype, for example ``np.uint8``.

    Returns
    -------
    numpy.ndarray
        The values in ``dtype``, same shape.

    Raises
    ------
    InvalidParameterError
        If ``dtype`` is not an integer, boolean or float dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from_float(np.array([-0.1, 0.0, 0.5, 1.0, 1.2]), np.uint8)
    array([  0,   0, 128, 255, 255], dtype=uint8)
    """
    target = np.dtype(dtype)
    values = np.asarray(values)
    if target.kind == "f":
        return values.astype(target)
    if target.kind == "b":
        return np.asarray(values > 0.5)
    if target.kind not in "ui":
        raise InvalidParameterError(
            f"dtype must be an integer, boolean or float dtype, got {target}"
        )
    flat = np.ascontiguousarray(values).reshape(-1)
    out = np.empty(flat.shape, dtype=target)
    # Blocks of FROM_FLOAT_BLOCK values through one float64 buffer that stays in cache: on a
    # 12 MP colour photo 0.04 s, against 0.2-1.5 s for one float64 array of the whole image
    # (its first touch alone costs a page fault per 4 KiB). The arithmetic is the same.
    buffer = np.empty(min(flat.size, FROM_FLOAT_BLOCK), dtype=np.float64)
    for start in range(0, flat.size, FROM_FLOAT_BLOCK):
        block = flat[start : start + FROM_FLOAT_BLOCK]
        out[start : start + block.size] = _scaled_integers(block, target, buffer[: block.size])
    return out.reshape(np.shape(values))


def _scaled_integers(block: np.ndarray, target: np.dtype, scaled: np.ndarray) -> np.ndarray:
    """``block`` (floats on the unit scale) times the integer dtype's maximum, rounded half
    to even and clipped to its range, NaN as 0, in the float64 buffer ``scaled`` (of
    ``block``'s shape), which is returned."""
    info = np.iinfo(target)
    np.multiply(block, float(info.max), out=scaled, dtype=np.float64, casting="unsafe")
    np.rint(scaled, out=scaled)
    # Infinities are clipped to the range; NaN (which clip keeps) becomes 0.
    np.clip(scaled, info.min, info.max, out=scaled)
    np.nan_to_num(scaled, copy=False, nan=0.0)
    return scaled


def planes_apply(pixels: np.ndarray) -> bool:
    """Whether :func:`to_float_planes` takes ``pixels``: 8- or 16-bit unsigned integers,
    ``(H, W)`` or ``(H, W, C)``."""
    return pixels.dtype in (np.uint8, np.uint16) and pixels.ndim in (2, 3)


def to_float_planes(pixels: np.ndarray) -> np.ndarray:
    """:func:`to_float` of 8- or 16-bit pixels ``(H, W)`` or ``(H, W, C)``, as one contiguous
    float32 array of planes ``(C, H, W)`` (C = 1 for grey): the layout of the solvers, made
    in one pass with one allocation (``to_float`` and a transposed copy take three)."""
    if not planes_apply(pixels):
        raise InvalidParameterError(
            f"to_float_planes takes uint8 or uint16 (H, W[, C]) pixels, got {pixels.dtype} "
            f"{pixels.shape}"
        )
    channels = pixels[..., None] if pixels.ndim == 2 else pixels
    height, width, count = channels.shape
    planes = np.empty((count, height, width), dtype=np.float32)
    maximum = np.float32(np.iinfo(pixels.dtype).max)
    for c in range(count):
        np.divide(channels[..., c], maximum, out=planes[c], dtype=np.float32)
    return planes


def from_float_planes(planes: np.ndarray, dtype: np.dtype | type | str, grey: bool) -> np.ndarray:
    """:func:`from_float` of float planes ``(C, H, W)`` to an integer dtype, in the pixel
    layout ``(H, W, C)`` (``(H, W)`` when ``grey``), converted and transposed in blocks of
    rows: one pass, one allocation of the output."""
    target = np.dtype(dtype)
    if target.kind not in "ui" or planes.ndim != 3:
        raise InvalidParameterError(
            f"from_float_planes makes integer pixels from (C, H, W) planes, got {target} "
            f"and shape {planes.shape}"
        )
    count, height, width = planes.shape
    out = np.empty((height, width, count), dtype=target)
    rows = max(1, FROM_FLOAT_BLOCK // max(width * count, 1))
    buffer = np.empty((min(rows, height), width, count), dtype=np.float64)
    for top in range(0, height, rows):
        block = planes[:, top : top + rows].transpose(1, 2, 0)
        out[top : top + block.shape[0]] = _scaled_integers(block, target, buffer[: block.shape[0]])
    return out[..., 0] if grey else out


def convert_dtype(values: np.ndarray, target: np.dtype) -> np.ndarray:
    """Convert between dtypes through the [0, 1] float scale; a no-op for equal dtypes."""
    if values.dtype == target:
        return values
    return from_float(to_float(values), target)


@dataclass(frozen=True)
class ValueRange:
    """The span ``[low, high]`` that :func:`to_unit_range` maps to [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> span = ValueRange(0.0, 4000.0)
    >>> span.normalise(np.array([0.0, 1000.0]))
    array([0.  , 0.25])
    >>> span.restore(np.array([0.25]))
    array([1000.])
    """

    low: float
    high: float

    @property
    def scale(self) -> float:
        """``high - low``, the factor between unit-range and original values."""
        return self.high - self.low

    def normalise(self, values: np.ndarray) -> np.ndarray:
        """Map values from ``[low, high]`` to [0, 1], keeping the float dtype."""
        if self.low == 0.0 and self.high == 1.0:
            return values
        values = np.asarray(values)
        dtype = values.dtype if values.dtype.kind == "f" else np.dtype(np.float64)
        shifted = values.astype(np.float64) - self.low
        return (shifted / self.scale).astype(dtype)

    def restore(self, values: np.ndarray) -> np.ndarray:
        """Map values from [0, 1] back to ``[low, high]``, the inverse of :meth:`normalise`."""
        if self.low == 0.0 and self.high == 1.0:
            return values
        values = np.asarray(values)
        dtype = values.dtype if values.dtype.kind == "f" else np.dtype(np.float64)
        return (values.astype(np.float64) * self.scale + self.low).astype(dtype)


def value_range(pixels: np.ndarray) -> ValueRange:
    """The span of values that stands for "black to white" in ``pixels``.

    Integer and boolean images span their dtype ([0, 1] after :func:`to_float`). A float
    image spans [0, 1] extended to take in all its values: ``[min(0, lowest),
    max(1, highest)]``. So floats already in [0, 1] are left as they are (the convention of
    scikit-image and of :func:`tvdenoise.denoise`), non-negative data such as photon counts
    or a ``[0, 4000]`` microscope image are only divided by their maximum (zero stays zero),
    and signed data are shifted as well. The map is continuous in the data: a value just
    outside [0, 1] changes the span only a little.

    Parameters
    ----------
    pixels : numpy.ndarray
        Any shape; integer, boolean or float dtype.

    Returns
    -------
    ValueRange
        ``ValueRange(0.0, 1.0)`` for integer images and floats within [0, 1].

    Raises
    ------
    InvalidParameterError
        If ``pixels`` holds NaN or infinite values, or has another dtype.

    Notes
    -----
    Why rescale: the L2 energy ``1/2 ||u - f||^2 + weight * TV_beta(u)`` is not
    scale-invariant. Denoising ``s * f`` with weight ``w`` gives ``s`` times the result of
    denoising ``f`` with weight ``w * s**(beta - 2)`` (``w / s`` for classic TV). Mapping
    the image to unit range first keeps ``weight`` meaning what it means for 8- and 16-bit
    images: a weight of 0.1 removes noise of about a tenth of the black-to-white range.
    Shifts change nothing for the L2 and L1 energies (TV ignores constants).

    Examples
    --------
    >>> import numpy as np
    >>> value_range(np.array([0.2, 0.7]))
    ValueRange(low=0.0, high=1.0)
    >>> value_range(np.array([-50.0, 4000.0]))
    ValueRange(low=-50.0, high=4000.0)
    """
    pixels = np.asarray(pixels)
    kind = pixels.dtype.kind
    if kind in "uib":
        return ValueRange(0.0, 1.0)
    if kind != "f":
        raise InvalidParameterError(
            f"pixels must have an integer, boolean or float dtype, got {pixels.dtype}"
        )
    if pixels.size == 0:
        return ValueRange(0.0, 1.0)
    lowest, highest = float(np.min(pixels)), float(np.max(pixels))
    if not (np.isfinite(lowest) and np.isfinite(highest)):
        raise InvalidParameterError("pixels hold NaN or infinite values; they cannot be scaled")
    return ValueRange(min(0.0, lowest), max(1.0, highest))


def to_unit_range(pixels: np.ndarray) -> tuple[np.ndarray, ValueRange]:
    """Float values on the unit scale the denoiser's ``weight`` is defined on, and the span.

    Integers are scaled by their dtype's maximum (:func:`to_float`); floats are mapped from
    :func:`value_range` to [0, 1]. Denoise the result, then call :func:`from_unit_range` with
    the returned span.

    Parameters
    ----------
    pixels : numpy.ndarray
        Any shape; integer, boolean or float dtype.

    Returns
    -------
    values : numpy.ndarray
        Floats (``float32`` for 8/16-bit and ``float32`` input), mostly within [0, 1].
    span : ValueRange
        What to pass to :func:`from_unit_range`.

    Raises
    ------
    InvalidParameterError
        As :func:`value_range`.

    Examples
    --------
    >>> import numpy as np
    >>> values, span = to_unit_range(np.array([0.0, 2.0, 4.0], dtype=np.float32))
    >>> values, span
    (array([0. , 0.5, 1. ], dtype=float32), ValueRange(low=0.0, high=4.0))
    >>> from_unit_range(values, span, np.float32)
    array([0., 2., 4.], dtype=float32)
    """
    span = value_range(pixels)
    return span.normalise(to_float(pixels)), span


def from_unit_range(
    values: np.ndarray, span: ValueRange, dtype: np.dtype | type | str
) -> np.ndarray:
    """Undo :func:`to_unit_range`: map back to ``span`` and convert to ``dtype``.

    Integer dtypes are rounded and clipped to their range (:func:`from_float`); float dtypes
    keep every value, also outside ``span`` (never clipped).

    Parameters
    ----------
    values : numpy.ndarray
        Unit-range floats, for example a denoised image.
    span : ValueRange
        The span :func:`to_unit_range` returned.
    dtype : numpy.dtype or type or str
        The dtype to return, usually the input image's.

    Returns
    -------
    numpy.ndarray
        The values in ``dtype``.
    """
    return from_float(span.restore(np.asarray(values)), dtype)
