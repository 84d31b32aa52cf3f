"""What a read image is: :class:`ImageFile` and :class:`ImageStack`, and the names of formats.

The format names come from the one table, :data:`tvdenoise.io.formats.FORMATS`:
:data:`SUPPORTED_EXTENSIONS`, :func:`output_format_for` (the format a file name asks for)
and :func:`normalise_format` (a ``format=`` argument to a table name).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tvdenoise.errors import ImageWriteError
from tvdenoise.io import formats

__all__ = [
    "FORMAT_TITLES",
    "SUPPORTED_EXTENSIONS",
    "SUPPORTED_FORMATS",
    "SUPPORTED_LIST",
    "ImageFile",
    "ImageStack",
    "normalise_format",
    "output_format_for",
    "unsupported_extension",
]

# The format table is tvdenoise.io.formats.FORMATS; these are views of it.
_EXTENSION_FORMATS: dict[str, str] = {ext: spec.name for ext, spec in formats.EXTENSIONS.items()}

#: File name extensions (lower case, with the dot) that :func:`load_image` and
#: :func:`save_image` handle; matching is case-insensitive.
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(_EXTENSION_FORMATS)

_FORMAT_NAMES: dict[str, str] = {
    key.upper(): spec.name
    for spec in formats.FORMATS
    for key in (spec.name, spec.option, *spec.aliases)
}

#: The extensions and the format titles as messages list them.
SUPPORTED_LIST = ", ".join(sorted(SUPPORTED_EXTENSIONS))
SUPPORTED_FORMATS = ", ".join(sorted(spec.title for spec in formats.FORMATS))
#: How messages spell each format (``"WEBP"`` -> ``"WebP"``).
FORMAT_TITLES = {spec.name: spec.title for spec in formats.FORMATS}


@dataclass
class ImageFile:
    """An image as stored in a file: pixels of the file's dtype, alpha and metadata.

    Parameters
    ----------
    pixels : numpy.ndarray
        ``(H, W)`` grey or ``(H, W, 3)`` RGB values in the file's own dtype (``uint8``,
        ``uint16``, ``float32``, ...), upright (EXIF orientation applied), alpha removed.
    alpha : numpy.ndarray or None
        ``(H, W)`` alpha channel in the dtype the file stores it in, or None. It is never
        denoised; :func:`save_image` writes it back unchanged.
    format : str
        ``"PNG"``, ``"JPEG"``, ``"TIFF"``, ``"BMP"``, ``"WEBP"``, ``"GIF"`` or ``"NPY"``: what
        the file's content is (not its name's extension).
    path : pathlib.Path or None
        Where the image was read from; None for images decoded from bytes.
    metadata : dict
        What can be carried to an output file: ``"dpi"`` (a pair of floats),
        ``"icc_profile"`` (bytes) and ``"exif"`` (bytes starting with ``b"Exif\\0\\0"``, the
        orientation tag removed); of a JPEG also ``"jpeg_qtables"`` and
        ``"jpeg_subsampling"`` (reused when saving as JPEG), of a WebP ``"webp_lossless"``,
        of a TIFF ``"tiff_compression"`` (kept when saving as TIFF; see
        :mod:`tvdenoise.io.tiff`); each present only when the file has it.

    Examples
    --------
    >>> import numpy as np
    >>> image = ImageFile(np.zeros((2, 3), np.uint16), None, "PNG")
    >>> image.bit_depth
    16
    """

    pixels: np.ndarray
    alpha: np.ndarray | None
    format: str
    path: Path | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def bit_depth(self) -> int:
        """Bits per sample of ``pixels``: 8, 16, 32 (``float32``), 64, or 1 for bool."""
        if self.pixels.dtype == np.bool_:
            return 1
        return int(self.pixels.dtype.itemsize * 8)


@dataclass
class ImageStack:
    """Several images of one shape and dtype from one file: TIFF pages, animation frames.

    Parameters
    ----------
    pixels : numpy.ndarray
        ``(P, H, W)`` grey or ``(P, H, W, 3)`` RGB values of the ``P`` pages in the file's own
        dtype, each page upright, alpha removed.
    alpha : numpy.ndarray or None
        ``(P, H, W)`` alpha of every page, or None when no page has alpha.
    format : str
        What the file's content is, as for :class:`ImageFile`.
    path : pathlib.Path or None
        Where the stack was read from; None for stacks decoded from bytes.
    metadata : dict
        As for :class:`ImageFile`, from the first page; animations add ``"durations"`` (a
        list of milliseconds, one a frame) and ``"loop"``.

    Examples
    --------
    >>> import numpy as np
    >>> stack = ImageStack(np.zeros((4, 2, 3), np.uint8), None, "TIFF")
    >>> stack.pages, stack.page(0).pixels.shape
    (4, (2, 3))
    """

    pixels: np.ndarray
    alpha: np.ndarray | None
    format: str
    path: Path | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        """The number of pages (frames)."""
        return int(self.pixels.shape[0])

    def page(self, index: int) -> ImageFile:
        """Page ``index`` as an :class:`ImageFile` (views, not copies) with the metadata."""
        alpha = None if self.alpha is None else self.alpha[index]
        return ImageFile(self.pixels[index], alpha, self.format, self.path, dict(self.metadata))


def output_format_for(path: str | os.PathLike[str]) -> str:
    """Return the format a file name's extension asks for.

    Parameters
    ----------
    path : str or os.PathLike
        A file name; only its extension (case-insensitive) matters.

    Returns
    -------
    str
        ``"PNG"``, ``"JPEG"``, ``"TIFF"``, ``"BMP"``, ``"WEBP"``, ``"GIF"`` or ``"NPY"``.

    Raises
    ------
    ImageWriteError
        If the extension is missing or not one of :data:`SUPPORTED_EXTENSIONS`.

    Examples
    --------
    >>> output_format_for("scan.TIF")
    'TIFF'
    """
    suffix = Path(os.fspath(path)).suffix.lower()
    try:
        return _EXTENSION_FORMATS[suffix]
    except KeyError:
        raise ImageWriteError(f"{os.fspath(path)}: {unsupported_extension(suffix)}") from None


def unsupported_extension(suffix: str) -> str:
    if not suffix:
        return f"no file extension to choose a format from (supported: {SUPPORTED_LIST})"
    return f"unsupported format '{suffix}' (supported: {SUPPORTED_LIST})"


def normalise_format(format: str, name: str) -> str:
    key = format.strip().lstrip(".").upper()
    try:
        return _FORMAT_NAMES[key]
    except KeyError:
        raise ImageWriteError(
            f"{name}: unsupported format {format!r} (supported: {SUPPORTED_FORMATS})"
        ) from None
