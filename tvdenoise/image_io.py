"""Reading and writing image files: formats, bit depths, alpha, metadata and atomic writes.

This module is the only place that touches image files. It reads PNG, JPEG, TIFF, BMP, WebP,
GIF and NumPy ``.npy`` files into numpy arrays of the file's own dtype (``uint8``,
``uint16``, ``float32``, ...) with the alpha channel split off, and writes such arrays back
with the same dtype, alpha and metadata where the output format allows. Multi-page TIFF,
animated GIF and WebP, and 3-D/4-D ``.npy`` arrays are read whole by :func:`load_stack` and
written by :func:`save_stack`. It does not import torch, so the command line's ``--help``
path and scripts that only convert files stay fast.

Which library does what, and why:

- Pillow decodes and encodes 8-bit images of every format and 16-bit grey PNG (mode ``I;16``).
- imagecodecs (libpng) reads and writes 16-bit grey+alpha, RGB and RGBA PNG, which Pillow
  silently reduces to 8 bits.
- tifffile reads and writes TIFF, keeping ``uint16``, ``float32`` and the other sample types
  exactly. TIFF compressions tifffile cannot decode without the optional ``imagecodecs``
  package (LZW, JPEG, ...) are read through Pillow when Pillow keeps all the bits (8-bit
  images, single-channel images); otherwise the error says to install ``imagecodecs``.
- numpy reads and writes ``.npy`` (``allow_pickle=False``: a file never runs code).

What each format can hold, and what :func:`save_image` does about the rest:

======  ==========================  ===================  ==================================
format  pixel types written         alpha                metadata written
======  ==========================  ===================  ==================================
PNG     uint8, uint16               kept                 dpi, icc_profile, exif
TIFF    every integer and float     kept                 dpi, icc_profile, exif text tags
JPEG    uint8 (others converted)    dropped              dpi, icc_profile, exif, quality
BMP     uint8 (others converted)    kept (grey -> RGBA)  dpi
WebP    uint8 (others converted)    kept (grey -> RGB)   icc_profile, exif
GIF     uint8 palette (see below)   1-bit (< 128 = 0)    none (frame durations in stacks)
NPY     every integer and float     kept (last channel)  none
======  ==========================  ===================  ==================================

Conversions are done with :func:`to_float` and :func:`from_float` (scaling by the dtype's
maximum, rounding half to even): a float array saved as PNG, JPEG, BMP, WebP or GIF becomes
``uint8``, a ``uint16`` image saved as JPEG, BMP, WebP or GIF becomes ``uint8``. JPEG stores
no alpha, so alpha is dropped; BMP stores alpha only in 32-bit colour files, so grey+alpha is
written as RGBA; WebP has no grey mode, so grey is written (and read back) as RGB. GIF holds
at most 256 colours: grey images and images with at most 256 colours are written exactly,
others are reduced to 256 colours (median cut, no dithering, which would add noise back).
GIF and WebP encoders merge an animation frame equal to the one before it into that frame
(adding the durations), so stacks that need an exact page count belong in TIFF or NPY.

JPEG output keeps the input's compression: when the image was read from a JPEG, its
quantisation tables and chroma subsampling are reused (so the output has the input's
quality); otherwise quality 95 without chroma subsampling (4:4:4). An explicit ``quality``
overrides the tables. WebP output is lossless unless the input was lossy WebP or a
``quality`` is given.

EXIF orientation is applied on reading, so ``pixels`` are upright, and the orientation tag is
removed from the carried EXIF block so that the output is not rotated a second time. A TIFF's
own Orientation tag is applied the same way.

Float images may hold any finite values; values outside [0, 1] are kept (never clipped) by
the readers and by float outputs (TIFF, NPY). :func:`value_range`, :func:`to_unit_range` and
:func:`from_unit_range` map them to the unit range the denoiser's ``weight`` is defined on and
back. NaN and infinite values are refused on reading (:class:`ImageReadError`).

Decoding is refused above ``max_pixels`` pixels (all pages together for stacks; default
:data:`DEFAULT_MAX_PIXELS`, Pillow's own decompression-bomb limit), checked from the file's
header before any pixel is decompressed.

Every failure raises :class:`~tvdenoise.errors.ImageReadError` or
:class:`~tvdenoise.errors.ImageWriteError` with a one-line message that starts with the file's
path, for example ``photo.png: no such file``. Writes are atomic: the image goes to a hidden
temporary file ``.<name>.tvdenoise-tmp-<random>`` beside the target, which is then moved into
place; :func:`clean_stale_temps` removes such files left behind by a killed process.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import struct
import threading
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tvdenoise.errors import ImageReadError, ImageWriteError, InvalidParameterError
from tvdenoise.io import formats
from tvdenoise.io.atomic import TEMP_NAME_PATTERN, clean_stale_temps
from tvdenoise.io.atomic import check_target as _check_target
from tvdenoise.io.atomic import write_atomically as _write_atomically
from tvdenoise.values import (
    ValueRange,
    from_float,
    from_unit_range,
    to_float,
    to_unit_range,
    value_range,
)
from tvdenoise.values import convert_dtype as _convert_dtype

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "SUPPORTED_EXTENSIONS",
    "TEMP_NAME_PATTERN",
    "ImageFile",
    "ImageStack",
    "ValueRange",
    "clean_stale_temps",
    "decode_image",
    "decode_stack",
    "encode_image",
    "encode_stack",
    "from_float",
    "from_unit_range",
    "load_image",
    "load_stack",
    "output_format_for",
    "save_image",
    "save_stack",
    "to_float",
    "to_unit_range",
    "value_range",
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

_SUPPORTED_LIST = ", ".join(sorted(SUPPORTED_EXTENSIONS))
_SUPPORTED_FORMATS = ", ".join(sorted(spec.title for spec in formats.FORMATS))
_FORMAT_TITLES = {spec.name: spec.title for spec in formats.FORMATS}

#: The largest number of pixels decoded by default (all pages together for a stack): Pillow's
#: own decompression-bomb limit, 2 * 89,478,485, about a 13,400 x 13,400 image. Decoded to
#: float32 RGB that is 2.1 GB, and the solvers need a few such arrays: larger images are far
#: more often a hostile or broken file than a genuine photograph.
DEFAULT_MAX_PIXELS = 178_956_970

_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the IEND chunk, always these 12 bytes
_EXIF_PREFIX = b"Exif\x00\x00"
_ORIENTATION_TAG = 0x0112

# Magic numbers of formats users are likely to try, to name them in the error message.
_OTHER_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"8BPS", "PSD"),
    (b"%PDF", "PDF"),
    (b"PK\x03\x04", "ZIP (an .npz archive?)"),
)


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
        ``"jpeg_subsampling"`` (reused when saving as JPEG), of a WebP ``"webp_lossless"``;
        each present only when the file has it.

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


# --------------------------------------------------------------------------------------------
# Formats and names
# --------------------------------------------------------------------------------------------


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
        raise ImageWriteError(f"{os.fspath(path)}: {_unsupported_extension(suffix)}") from None


def _unsupported_extension(suffix: str) -> str:
    if not suffix:
        return f"no file extension to choose a format from (supported: {_SUPPORTED_LIST})"
    return f"unsupported format '{suffix}' (supported: {_SUPPORTED_LIST})"


def _normalise_format(format: str, name: str) -> str:
    key = format.strip().lstrip(".").upper()
    try:
        return _FORMAT_NAMES[key]
    except KeyError:
        raise ImageWriteError(
            f"{name}: unsupported format {format!r} (supported: {_SUPPORTED_FORMATS})"
        ) from None


def _sniff(data: bytes) -> str | None:
    """Name the format of encoded image bytes from their magic number, or None."""
    spec = formats.sniff(data)
    return None if spec is None else spec.name


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _check_max_pixels(max_pixels: int | None) -> None:
    if max_pixels is None:
        return
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise InvalidParameterError(
            f"max_pixels must be a positive integer or None, got {max_pixels!r}"
        )


def _check_size(name: str, shape: tuple[int, ...], max_pixels: int | None) -> None:
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
def _pillow_limit(max_pixels: int | None) -> Iterator[None]:
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


def _pillow_too_large(name: str, max_pixels: int | None, error: Exception) -> ImageReadError:
    """Our message for Pillow's DecompressionBombError, with the size Pillow names."""
    found = re.search(r"\((\d+) pixels\)", str(error))
    size = f"{int(found.group(1)):,} pixels, " if found else ""
    return ImageReadError(
        f"{name}: image too large: {size}above the limit of {max_pixels:,} (a guard against "
        "decompression bombs; raise max_pixels or --max-pixels if the image is genuine)"
    )


def _check_finite(name: str, *arrays: np.ndarray | None) -> None:
    for array in arrays:
        if array is None or array.dtype.kind != "f":
            continue
        finite = np.isfinite(array)
        if not finite.all():
            bad = int(array.size - np.count_nonzero(finite))
            nan = int(np.count_nonzero(np.isnan(array)))
            raise ImageReadError(
                f"{name}: float image holds {nan} NaN and {bad - nan} infinite values of "
                f"{array.size}; replace them (for example with numpy.nan_to_num) before "
                "denoising"
            )


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def load_image(
    path: str | os.PathLike[str], *, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> ImageFile:
    """Read an image file into an :class:`ImageFile`.

    The format is recognised from the content, not the extension. Palette images become RGB
    (RGBA when the palette has transparency), 1-bit images become ``uint8`` grey with values
    0 and 255, CMYK and YCbCr become RGB. EXIF orientation is applied. Of an animated GIF or
    WebP, the first frame is read; multi-page TIFFs are refused (read them with
    :func:`load_stack`). A ``.npy`` file must hold an ``(H, W)`` or ``(H, W, C)`` array
    with ``C`` from 1 to 4 (the last channel of 2 and 4 is alpha). The file is only read.

    Parameters
    ----------
    path : str or os.PathLike
        The file to read.
    max_pixels : int or None, optional
        Refuse images with more pixels than this, before decoding them (a guard against
        decompression bombs). Default :data:`DEFAULT_MAX_PIXELS`; None for no limit.

    Returns
    -------
    ImageFile
        Pixels in the file's dtype with alpha split off, the format, the path and the
        metadata that can be carried to an output file.

    Raises
    ------
    ImageReadError
        If the file is missing, a directory, unreadable, empty, not an image, truncated,
        above ``max_pixels``, a float image with NaN or infinite values, or in an
        unsupported format; the message is one line and starts with the path.
    InvalidParameterError
        If ``max_pixels`` is not a positive integer or None.

    Examples
    --------
    >>> image = load_image("photo.png")  # doctest: +SKIP
    >>> image.pixels.shape, image.pixels.dtype, image.alpha is None  # doctest: +SKIP
    ((512, 512, 3), dtype('uint8'), True)
    """
    name = os.fspath(path)
    data = _read_file(name)
    image = decode_image(data, name=name, max_pixels=max_pixels)
    _release(data)
    image.path = Path(name)
    return image


def load_stack(
    path: str | os.PathLike[str], *, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> ImageStack:
    """Read every page of a file: multi-page TIFF, animated GIF or WebP, 3-D/4-D ``.npy``.

    Each page is read as :func:`load_image` reads a single image (upright, alpha split off,
    the file's dtype). A file with one image gives a stack of one page. A ``.npy`` array is
    ``(P, H, W)`` or ``(P, H, W, C)``; an ``(H, W)`` or ``(H, W, C)`` array with ``C`` up
    to 4 is one page. Animation frames are composited as a viewer shows them; their
    durations are kept in ``metadata["durations"]``.

    Parameters
    ----------
    path : str or os.PathLike
        The file to read.
    max_pixels : int or None, optional
        Refuse files whose pages hold more pixels than this in all. Default
        :data:`DEFAULT_MAX_PIXELS`; None for no limit.

    Returns
    -------
    ImageStack
        ``pixels`` ``(P, H, W)`` or ``(P, H, W, 3)``, ``alpha`` ``(P, H, W)`` or None.

    Raises
    ------
    ImageReadError
        As :func:`load_image`, and if the pages differ in size, channels or sample type.
    InvalidParameterError
        If ``max_pixels`` is not a positive integer or None.

    Examples
    --------
    >>> stack = load_stack("timelapse.tif")  # doctest: +SKIP
    >>> stack.pixels.shape  # doctest: +SKIP
    (12, 512, 512)
    """
    name = os.fspath(path)
    data = _read_file(name)
    stack = decode_stack(data, name=name, max_pixels=max_pixels)
    _release(data)
    stack.path = Path(name)
    return stack


#: Encoded files at least this large are freed as soon as they are decoded (see _release).
_RELEASE_ABOVE = 64 * 2**20


def _release(data: bytes) -> None:
    """Free a large file's encoded bytes now. Decoders (tifffile's pages, Pillow's images)
    keep the stream that wraps them in reference cycles, so without a collection the bytes
    of a 100-megapixel TIFF stay in memory beside its pixels until the next one."""
    if len(data) >= _RELEASE_ABOVE:
        import gc

        gc.collect()


def _read_file(name: str) -> bytes:
    file_path = Path(name)
    try:
        if file_path.is_dir():
            raise ImageReadError(f"{name}: is a directory, not an image file")
        with open(file_path, "rb") as stream:
            return stream.read()
    except ImageReadError:
        raise
    except (FileNotFoundError, NotADirectoryError):
        raise ImageReadError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ImageReadError(f"{name}: is a directory, not an image file") from None
    except PermissionError:
        raise ImageReadError(f"{name}: permission denied") from None
    except OSError as error:
        reason = error.strerror or _one_line(error)
        raise ImageReadError(f"{name}: cannot read ({reason})") from None


def _identify(data: bytes, name: str, max_pixels: int | None) -> str:
    _check_max_pixels(max_pixels)
    if not data:
        raise ImageReadError(f"{name}: empty file (0 bytes), not an image")
    image_format = _sniff(data)
    if image_format is None:
        raise ImageReadError(f"{name}: {_unknown_content_reason(data, name)}")
    return image_format


def decode_image(
    data: bytes, name: str = "<stdin>", *, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> ImageFile:
    """Decode an image from bytes, as :func:`load_image` does from a file.

    Parameters
    ----------
    data : bytes
        The encoded image, for example read from standard input.
    name : str, optional
        What to call the image in error messages; its extension, if any, is only used to
        explain a refusal.
    max_pixels : int or None, optional
        As for :func:`load_image`.

    Returns
    -------
    ImageFile
        The decoded image, with ``path`` None.

    Raises
    ------
    ImageReadError
        As :func:`load_image`.
    InvalidParameterError
        If ``max_pixels`` is not a positive integer or None.

    Examples
    --------
    >>> import numpy as np
    >>> encoded = encode_image(np.zeros((2, 3), dtype=np.uint8), "PNG")
    >>> image = decode_image(encoded)
    >>> image.format, image.pixels.shape, image.pixels.dtype
    ('PNG', (2, 3), dtype('uint8'))
    """
    data = bytes(data)
    image_format = _identify(data, name, max_pixels)
    if image_format == "TIFF":
        decoded = _decode_tiff(data, name, max_pixels)
    elif image_format == "NPY":
        pixels, alpha = _decode_npy(data, name, max_pixels, stack=False)
        decoded = (pixels[0], None if alpha is None else alpha[0], {}, 1)
    elif image_format == "PNG" and _png_needs_libpng(data):
        decoded = _decode_png16(data, name, max_pixels)
    else:
        decoded = _decode_with_pillow(data, image_format, name, max_pixels)
    if image_format == "PNG" and _PNG_END not in data[-4096:]:
        # Pillow decodes a PNG cut after its pixel data without a word; a file without its
        # end chunk is a broken download all the same.
        raise ImageReadError(f"{name}: cannot decode PNG image (truncated or corrupt: no end)")
    pixels, alpha = _upright(decoded)
    _check_finite(name, pixels, alpha)
    return ImageFile(pixels=pixels, alpha=alpha, format=image_format, metadata=decoded[2])


def decode_stack(
    data: bytes, name: str = "<stdin>", *, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> ImageStack:
    """Decode every page of an image from bytes, as :func:`load_stack` does from a file.

    Parameters
    ----------
    data : bytes
        The encoded file.
    name : str, optional
        What to call it in error messages.
    max_pixels : int or None, optional
        As for :func:`load_stack`.

    Returns
    -------
    ImageStack
        The pages, with ``path`` None.

    Raises
    ------
    ImageReadError
        As :func:`load_stack`.
    InvalidParameterError
        If ``max_pixels`` is not a positive integer or None.

    Examples
    --------
    >>> import numpy as np
    >>> pages = np.arange(24, dtype=np.uint16).reshape(2, 3, 4)
    >>> stack = decode_stack(encode_stack(pages, "TIFF"))
    >>> stack.pages, stack.pixels.dtype, bool((stack.pixels == pages).all())
    (2, dtype('uint16'), True)
    """
    data = bytes(data)
    image_format = _identify(data, name, max_pixels)
    if image_format == "NPY":
        pixels, alpha = _decode_npy(data, name, max_pixels, stack=True)
        _check_finite(name, pixels, alpha)
        return ImageStack(pixels, alpha, image_format)
    if image_format == "TIFF":
        pages = _decode_tiff_pages(data, name, max_pixels)
    elif image_format in ("GIF", "WEBP"):
        pages = _decode_animation(data, image_format, name, max_pixels)
    else:
        single = decode_image(data, name, max_pixels=max_pixels)
        return ImageStack(
            single.pixels[None],
            None if single.alpha is None else single.alpha[None],
            image_format,
            metadata=single.metadata,
        )
    return _stack_pages(pages, image_format, name)


def _upright(decoded: _Decoded) -> tuple[np.ndarray, np.ndarray | None]:
    pixels, alpha, _, orientation = decoded
    pixels = _orient(pixels, orientation)
    if alpha is not None:
        alpha = _orient(alpha, orientation)
    return pixels, alpha


def _stack_pages(pages: list[_Decoded], image_format: str, name: str) -> ImageStack:
    upright = [_upright(page) for page in pages]
    first = upright[0][0]
    for index, (pixels, _) in enumerate(upright):
        if pixels.shape != first.shape or pixels.dtype != first.dtype:
            raise ImageReadError(
                f"{name}: page {index + 1} is {_describe_page(pixels)}, page 1 is "
                f"{_describe_page(first)}; a stack needs pages of one size and type"
            )
    pixels = np.stack([page[0] for page in upright])
    alpha: np.ndarray | None = None
    if any(page[1] is not None for page in upright):
        opaque = np.iinfo(first.dtype).max if first.dtype.kind in "ui" else 1.0
        alpha = np.stack(
            [
                page[1] if page[1] is not None else np.full(first.shape[:2], opaque, first.dtype)
                for page in upright
            ]
        ).astype(first.dtype, copy=False)
    _check_finite(name, pixels, alpha)
    return ImageStack(pixels, alpha, image_format, metadata=pages[0][2])


def _describe_page(pixels: np.ndarray) -> str:
    channels = "grey" if pixels.ndim == 2 else f"{pixels.shape[2]} channels"
    return f"{pixels.shape[1]}x{pixels.shape[0]} {channels} {pixels.dtype}"


def _unknown_content_reason(data: bytes, name: str) -> str:
    for signature, format_name in _OTHER_SIGNATURES:
        if data.startswith(signature):
            return f"unsupported format {format_name} (supported: {_SUPPORTED_FORMATS})"
    suffix = Path(name).suffix.lower()
    if suffix and suffix not in SUPPORTED_EXTENSIONS and not name.startswith("<"):
        return _unsupported_extension(suffix)
    if _looks_like_text(data):
        return "not an image (the file holds text)"
    return "cannot decode image (truncated or not an image)"


def _looks_like_text(data: bytes) -> bool:
    sample = data[:4096]
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character cut at the end of the sample is still text.
        try:
            text = sample[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    return all(character.isprintable() or character in "\t\n\r\f" for character in text)


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
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


def _png_needs_libpng(data: bytes) -> bool:
    """True for 16-bit PNG with alpha or colour, which Pillow would reduce to 8 bits."""
    if len(data) < 26 or data[12:16] != b"IHDR":
        return False
    bit_depth, colour_type = data[24], data[25]
    return bit_depth == 16 and colour_type in (2, 4, 6)


_Decoded = tuple[np.ndarray, "np.ndarray | None", dict[str, Any], int]


def _pillow_metadata(image: Any, *, carry_exif: bool = True) -> tuple[dict[str, Any], int]:
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
        orientation = int(exif.get(_ORIENTATION_TAG, 1))
        if carry_exif and len(exif):
            if orientation != 1:
                del exif[_ORIENTATION_TAG]
                metadata["exif"] = exif.tobytes()
            elif isinstance(info.get("exif"), bytes):
                metadata["exif"] = _with_exif_prefix(info["exif"])
            else:
                metadata["exif"] = exif.tobytes()
    except Exception:  # corrupt EXIF must not make a readable image unreadable
        metadata.pop("exif", None)
    if orientation not in range(1, 9):
        orientation = 1
    return metadata, orientation


def _with_exif_prefix(exif: bytes) -> bytes:
    """WebP and PNG hold the TIFF structure alone; JPEG and our metadata use the prefix."""
    return exif if exif.startswith(_EXIF_PREFIX) else _EXIF_PREFIX + exif


def _jpeg_metadata(image: Any) -> dict[str, Any]:
    """The quantisation tables and chroma subsampling of an opened JPEG, where readable."""
    from PIL import JpegImagePlugin

    metadata: dict[str, Any] = {}
    with contextlib.suppress(Exception):
        tables = image.quantization
        if tables:
            metadata["jpeg_qtables"] = [list(tables[key]) for key in sorted(tables)]
    with contextlib.suppress(Exception):
        subsampling = JpegImagePlugin.get_sampling(image)
        if subsampling in (0, 1, 2):
            metadata["jpeg_subsampling"] = int(subsampling)
    return metadata


def _webp_is_lossless(data: bytes) -> bool:
    """True when the WebP's (first) image chunk is VP8L, the lossless coding."""
    position = 12
    while position + 8 <= len(data):
        chunk = data[position : position + 4]
        (size,) = struct.unpack("<I", data[position + 4 : position + 8])
        if chunk == b"VP8L":
            return True
        if chunk == b"VP8 ":
            return False
        # An animation frame (ANMF) holds its image chunks after a 16-byte frame header.
        position += 8 + 16 if chunk == b"ANMF" else 8 + size + (size & 1)
    return False


def _decode_with_pillow(
    data: bytes, image_format: str, name: str, max_pixels: int | None
) -> _Decoded:
    from PIL import Image

    try:
        with _pillow_limit(max_pixels):
            image: Image.Image = Image.open(io.BytesIO(data), formats=[image_format])
            _check_size(name, (image.size[1], image.size[0]), max_pixels)
            image.load()
    except ImageReadError:
        raise
    except Image.DecompressionBombError as error:
        raise _pillow_too_large(name, max_pixels, error) from None
    except Exception:
        raise ImageReadError(
            f"{name}: cannot decode {_FORMAT_TITLES[image_format]} image (truncated or corrupt)"
        ) from None
    # A TIFF's "EXIF" in Pillow is its own tag directory (strip offsets, ...): not carried.
    metadata, orientation = _pillow_metadata(image, carry_exif=image_format != "TIFF")
    if image_format == "JPEG":
        metadata.update(_jpeg_metadata(image))
    elif image_format == "WEBP":
        metadata["webp_lossless"] = _webp_is_lossless(data)

    mode = image.mode
    transparency = image.info.get("transparency")
    if mode in ("1", "L") and transparency is not None and not isinstance(transparency, bytes):
        image = image.convert("LA")
    elif mode in ("P", "PA"):
        image = image.convert("RGBA" if mode == "PA" or transparency is not None else "RGB")
    elif mode == "1":
        image = image.convert("L")
    elif mode == "RGB" and transparency is not None:
        image = image.convert("RGBA")
    elif mode in ("La",):
        image = image.convert("LA")
    elif mode in ("RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
        image = image.convert("RGBA" if mode == "RGBa" else "RGB")

    try:
        array = np.array(image)
    except Exception:
        raise ImageReadError(
            f"{name}: cannot decode {_FORMAT_TITLES[image_format]} image "
            f"(unsupported pixel mode {mode})"
        ) from None
    if array.dtype.byteorder not in ("=", "|"):
        array = array.astype(array.dtype.newbyteorder("="))

    alpha: np.ndarray | None = None
    if image.mode in ("LA", "RGBA"):
        alpha = np.ascontiguousarray(array[..., -1])
        array = array[..., :-1]
        if image.mode == "LA":
            array = array[..., 0]
    elif image.mode.startswith("I;16") and transparency is not None:
        alpha = np.where(array == transparency, 0, 65535).astype(np.uint16)
    if (
        image_format == "GIF"
        and array.ndim == 3
        and np.array_equal(array[..., 0], array[..., 1])
        and np.array_equal(array[..., 1], array[..., 2])
    ):
        array = array[..., 0]  # GIF has no grey mode: a grey palette stands for grey
    if array.ndim not in (2, 3):
        raise ImageReadError(
            f"{name}: cannot decode {_FORMAT_TITLES[image_format]} image "
            f"(unsupported pixel mode {mode})"
        )
    return np.ascontiguousarray(array), alpha, metadata, orientation


def _decode_png16(data: bytes, name: str, max_pixels: int | None) -> _Decoded:
    """Decode 16-bit grey+alpha, RGB and RGBA PNG with imagecodecs (libpng); metadata through
    Pillow."""
    import imagecodecs
    from PIL import Image

    width, height = struct.unpack(">II", data[16:24])
    _check_size(name, (height, width), max_pixels)
    metadata: dict[str, Any] = {}
    orientation = 1
    try:
        # Opening only parses the chunks before the pixel data.
        with _pillow_limit(None):
            opened = Image.open(io.BytesIO(data), formats=["PNG"])
        metadata, orientation = _pillow_metadata(opened)
    except Exception:
        metadata, orientation = {}, 1
    # libpng warns through imagecodecs' logger (an interlaced file, for one); see _quieten.
    _quieten("imagecodecs")
    try:
        array = imagecodecs.png_decode(data)
        if array.dtype != np.uint16 or array.ndim != 3:
            raise ValueError(f"libpng gave {array.dtype} {array.shape}")
    except Exception:
        raise ImageReadError(f"{name}: cannot decode PNG image (truncated or corrupt)") from None
    # libpng expands a tRNS colour key into an alpha plane: 0 where a pixel equals the key,
    # 65535 elsewhere.
    planes = array.shape[2]
    alpha: np.ndarray | None = None
    if planes in (2, 4):
        alpha = np.ascontiguousarray(array[..., -1])
        array = array[..., :-1]
    if planes == 2:
        array = array[..., 0]
    return np.ascontiguousarray(array), alpha, metadata, orientation


def _decode_npy(
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
    _check_size(name, pages_shape[:3] if pages_shape[0] > 1 else pages_shape[1:3], max_pixels)
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


def _decode_animation(
    data: bytes, image_format: str, name: str, max_pixels: int | None
) -> list[_Decoded]:
    """Every frame of a GIF or WebP, composited as a viewer shows it."""
    from PIL import Image, ImageSequence

    try:
        with _pillow_limit(max_pixels):
            image = Image.open(io.BytesIO(data), formats=[image_format])
            count = int(getattr(image, "n_frames", 1))
            if count == 1:
                return [_decode_with_pillow(data, image_format, name, max_pixels)]
            _check_size(name, (count, image.size[1], image.size[0]), max_pixels)
            metadata, orientation = _pillow_metadata(image)
            durations: list[int] = []
            frames: list[np.ndarray] = []
            for frame in ImageSequence.Iterator(image):
                durations.append(int(frame.info.get("duration", 0) or 0))
                frames.append(np.array(frame.convert("RGBA")))
            loop = image.info.get("loop")
    except ImageReadError:
        raise
    except Image.DecompressionBombError as error:
        raise _pillow_too_large(name, max_pixels, error) from None
    except Exception:
        raise ImageReadError(
            f"{name}: cannot decode {_FORMAT_TITLES[image_format]} image (truncated or corrupt)"
        ) from None
    rgba = np.stack(frames)
    alpha = rgba[..., 3] if np.any(rgba[..., 3] != 255) else None
    grey = np.array_equal(rgba[..., 0], rgba[..., 1]) and np.array_equal(rgba[..., 1], rgba[..., 2])
    pixels = rgba[..., 0] if grey else rgba[..., :3]
    metadata["durations"] = durations
    if loop is not None:
        metadata["loop"] = int(loop)
    if image_format == "WEBP":
        metadata["webp_lossless"] = _webp_is_lossless(data)
    return [
        (pixels[index], None if alpha is None else alpha[index], metadata, orientation)
        for index in range(count)
    ]


class _TiffFallback(Exception):
    """tifffile cannot decode this TIFF; Pillow may (the message says why not)."""


def _decode_tiff(data: bytes, name: str, max_pixels: int | None) -> _Decoded:
    try:
        return _decode_tiff_with_tifffile(data, name, max_pixels, all_pages=False)[0]
    except _TiffFallback as refusal:
        reason, pillow_keeps_all_bits = refusal.args
        if pillow_keeps_all_bits:
            with contextlib.suppress(ImageReadError):
                return _decode_with_pillow(data, "TIFF", name, max_pixels)
        raise ImageReadError(f"{name}: {reason}") from None


def _decode_tiff_pages(data: bytes, name: str, max_pixels: int | None) -> list[_Decoded]:
    try:
        return _decode_tiff_with_tifffile(data, name, max_pixels, all_pages=True)
    except _TiffFallback:
        # Only single-page files get here (see _decode_tiff_with_tifffile): Pillow may do.
        return [_decode_tiff(data, name, max_pixels)]


def _decode_tiff_with_tifffile(
    data: bytes, name: str, max_pixels: int | None, *, all_pages: bool
) -> list[_Decoded]:
    import tifffile

    _quieten("tifffile")

    try:
        tiff = tifffile.TiffFile(io.BytesIO(data))
    except Exception:
        raise ImageReadError(f"{name}: cannot decode TIFF image (truncated or corrupt)") from None
    with tiff:
        try:
            # Reduced-resolution pages (thumbnails, pyramid levels) do not count as images.
            every_page: list[Any] = list(tiff.pages)
            pages = [page for page in every_page if not int(page.subfiletype) & 1]
            height = max(int(page.imagelength) for page in pages)
            width = max(int(page.imagewidth) for page in pages)
        except Exception:
            raise ImageReadError(
                f"{name}: cannot decode TIFF image (truncated or corrupt)"
            ) from None
        if len(pages) > 1 and not all_pages:
            raise ImageReadError(
                f"{name}: multi-page TIFF ({len(pages)} pages); read it as a stack "
                "(load_stack, or --stack frames|volume on the command line)"
            )
        _check_size(
            name, (len(pages), height, width) if len(pages) > 1 else (height, width), max_pixels
        )
        decoded = []
        for page in pages:
            try:
                decoded.append(_decode_tiff_page(page, name))
            except _TiffFallback as refusal:
                if len(pages) > 1:
                    raise ImageReadError(f"{name}: {refusal.args[0]}") from None
                raise
            except (ImageReadError, MemoryError):
                raise
            except Exception:
                # A corrupt header can give tifffile tags of the wrong type or shape (found by
                # the property tests): any other failure here is a corrupt file.
                raise ImageReadError(
                    f"{name}: cannot decode TIFF image (truncated or corrupt)"
                ) from None
    return decoded


def _decode_tiff_page(page: Any, name: str) -> _Decoded:
    bits = int(page.bitspersample)
    samples = int(page.samplesperpixel)
    pillow_keeps_all_bits = bits <= 8 or samples == 1
    photometric = page.photometric.name if page.photometric is not None else "NONE"
    if photometric not in ("MINISBLACK", "MINISWHITE", "RGB", "PALETTE"):
        raise _TiffFallback(f"unsupported TIFF colour model {photometric}", pillow_keeps_all_bits)
    try:
        array = page.asarray()
    except Exception as error:
        message = _one_line(error)
        if "imagecodecs" in message:
            compression = getattr(page.compression, "name", str(page.compression))
            reason = (
                f"cannot decode TIFF compression {compression} (install the 'imagecodecs' package)"
            )
        else:
            reason = "cannot decode TIFF image (truncated or corrupt)"
        raise _TiffFallback(reason, pillow_keeps_all_bits) from None
    metadata, orientation = _tiff_metadata(page)
    colormap = page.colormap if photometric == "PALETTE" else None
    array = _tiff_to_yxs(array, page.axes, name)
    if array.dtype.kind not in "buif":
        raise ImageReadError(f"{name}: unsupported TIFF sample type {array.dtype}")
    if array.dtype.byteorder not in ("=", "|"):
        array = array.astype(array.dtype.newbyteorder("="))

    alpha: np.ndarray | None = None
    if photometric == "PALETTE":
        if colormap is None or array.ndim != 2:
            raise ImageReadError(f"{name}: cannot decode TIFF image (bad palette)")
        rgb = np.moveaxis(colormap[:, array], 0, -1)
        if bits <= 8:
            rgb = rgb if colormap.max() < 256 else rgb >> 8
            rgb = rgb.astype(np.uint8)
        array = rgb.astype(np.uint8 if bits <= 8 else np.uint16)
    elif array.ndim == 3:
        colour_samples = 3 if photometric == "RGB" else 1
        if array.shape[-1] < colour_samples or array.shape[-1] > colour_samples + 1:
            raise ImageReadError(
                f"{name}: unsupported TIFF with {array.shape[-1]} samples per pixel "
                f"({photometric}); expected grey, grey+alpha, RGB or RGBA"
            )
        if array.shape[-1] == colour_samples + 1:
            alpha = np.ascontiguousarray(array[..., -1])
        array = array[..., :colour_samples]
        if colour_samples == 1:
            array = array[..., 0]
    elif photometric == "RGB":
        raise ImageReadError(f"{name}: cannot decode TIFF image (RGB without 3 samples)")

    if photometric == "MINISWHITE":
        if array.dtype == np.bool_:
            array = ~array
        elif array.dtype.kind == "u":
            array = np.iinfo(array.dtype).max - array
        else:
            raise ImageReadError(
                f"{name}: unsupported TIFF: white-is-zero with {array.dtype} samples"
            )
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * np.uint8(255)
    return np.ascontiguousarray(array), alpha, metadata, orientation


def _quieten(library: str) -> None:
    """Keep a library's log warnings (tifffile's about damaged files, libpng's through
    imagecodecs) off stderr unless logging is set up.

    Library code does not print; damage is reported by the error raised instead. A
    NullHandler only stops Python's last-resort output: records still propagate to handlers
    an application configures.
    """
    logger = logging.getLogger(library)
    if not any(isinstance(handler, logging.NullHandler) for handler in logger.handlers):
        logger.addHandler(logging.NullHandler())


def _tiff_to_yxs(array: np.ndarray, axes: str, name: str) -> np.ndarray:
    """Reorder a TIFF page's array to (Y, X) or (Y, X, S), dropping length-1 axes."""
    if "S" in axes and axes.index("S") < axes.index("X"):
        index = axes.index("S")
        array = np.moveaxis(array, index, -1)
        axes = axes[:index] + axes[index + 1 :] + "S"
    keep = [i for i, axis in enumerate(axes) if axis in "YXS" or array.shape[i] != 1]
    kept_axes = "".join(axes[i] for i in keep)
    array = array.reshape([array.shape[i] for i in keep])
    if kept_axes not in ("YX", "YXS"):
        raise ImageReadError(f"{name}: unsupported TIFF layout (axes {axes}, shape {array.shape})")
    return array


def _tiff_metadata(page: Any) -> tuple[dict[str, Any], int]:
    metadata: dict[str, Any] = {}
    tags = page.tags
    orientation = 1
    with contextlib.suppress(Exception):
        orientation_tag = tags.get("Orientation")
        if orientation_tag is not None:
            orientation = int(orientation_tag.value)
    if orientation not in range(1, 9):
        orientation = 1
    with contextlib.suppress(Exception):
        x_tag, y_tag = tags.get("XResolution"), tags.get("YResolution")
        unit_tag = tags.get("ResolutionUnit")
        unit = int(unit_tag.value) if unit_tag is not None else 2  # the TIFF default: inch
        if x_tag is not None and y_tag is not None and unit in (2, 3):
            x_num, x_den = x_tag.value
            y_num, y_den = y_tag.value
            scale = 1.0 if unit == 2 else 2.54
            x_dpi, y_dpi = scale * x_num / x_den, scale * y_num / y_den
            if x_dpi > 0 and y_dpi > 0:
                metadata["dpi"] = (x_dpi, y_dpi)
    with contextlib.suppress(Exception):
        icc_tag = tags.get("InterColorProfile")
        if icc_tag is not None and icc_tag.value:
            value = icc_tag.value
            metadata["icc_profile"] = value if isinstance(value, bytes) else bytes(value)
    with contextlib.suppress(Exception):
        exif = _tiff_text_exif(tags)
        if exif:
            metadata["exif"] = exif
    return metadata, orientation


def _tiff_text_exif(tags: Any) -> bytes | None:
    """A TIFF's descriptive text tags (Make, Model, Copyright, ...) as an EXIF block, so
    that they reach JPEG, PNG and WebP outputs as EXIF and TIFF outputs as tags again."""
    from PIL import Image

    exif = Image.Exif()
    for code in _TIFF_TEXT_TAGS:
        tag = tags.get(code)
        if tag is None or not isinstance(tag.value, str) or not tag.value:
            continue
        if code == 270 and tag.value.startswith(("{", "ImageJ=", "<?xml", "<OME")):
            continue  # layout notes of tifffile, ImageJ or OME: not about this image
        exif[code] = tag.value
    return exif.tobytes() if len(exif) else None


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def encode_image(
    image: ImageFile | np.ndarray,
    format: str,
    *,
    quality: int | None = None,
    name: str = "<output>",
) -> bytes:
    """Encode an image into the bytes of a PNG, JPEG, TIFF, BMP, WebP, GIF or NPY file.

    What each format cannot hold is converted as the module documentation's table says:
    floats become ``uint8`` (except in TIFF and NPY), ``uint16`` becomes ``uint8`` in JPEG,
    BMP, WebP and GIF, JPEG drops alpha. Metadata (``image.metadata``) is written where the
    format allows; if the encoder rejects it (an over-long EXIF block, say) the image is
    written without it.

    Parameters
    ----------
    image : ImageFile or numpy.ndarray
        An :class:`ImageFile`, or an array ``(H, W)`` grey, ``(H, W, 2)`` grey+alpha,
        ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA, integer, boolean or float (floats in
        [0, 1]).
    format : str
        ``"PNG"``, ``"JPEG"`` (or ``"JPG"``), ``"TIFF"`` (or ``"TIF"``), ``"BMP"``,
        ``"WEBP"``, ``"GIF"`` or ``"NPY"``, any case, with or without a leading dot.
    quality : int or None, optional
        JPEG and WebP quality from 1 to 100; ignored by the other formats. None (default):
        JPEG reuses the quantisation tables and chroma subsampling in ``image.metadata``
        (from a JPEG input), else quality 95 with 4:4:4; WebP is lossless unless the input
        was lossy WebP (then quality 95). A given quality makes WebP lossy; JPEG keeps the
        input's subsampling if known, else 4:4:4 at 90 and above and 4:2:0 below.
    name : str, optional
        What to call the output in error messages.

    Returns
    -------
    bytes
        The encoded file.

    Raises
    ------
    ImageWriteError
        If the format is unknown or the image cannot be stored in it.
    InvalidParameterError
        If ``quality`` is not None or an integer from 1 to 100.

    Examples
    --------
    >>> import numpy as np
    >>> encode_image(np.zeros((2, 3, 3), dtype=np.uint16), "png")[:4]
    b'\\x89PNG'
    """
    image_format = _normalise_format(format, name)
    _check_quality(quality)
    pixels, alpha, metadata = _parts(image, name)
    return _encode(pixels, alpha, image_format, metadata, quality, name)


def encode_stack(
    stack: ImageStack | np.ndarray,
    format: str,
    *,
    quality: int | None = None,
    name: str = "<output>",
) -> bytes:
    """Encode pages into one multi-page TIFF, animated GIF or WebP, or ``.npy`` file.

    Parameters
    ----------
    stack : ImageStack or numpy.ndarray
        An :class:`ImageStack`, or an array ``(P, H, W)`` grey or ``(P, H, W, C)`` with
        ``C`` from 1 to 4 (the last channel of 2 and 4 is alpha).
    format : str
        ``"TIFF"``, ``"GIF"``, ``"WEBP"`` or ``"NPY"``; other formats take one page only.
    quality : int or None, optional
        As for :func:`encode_image`.
    name : str, optional
        What to call the output in error messages.

    Returns
    -------
    bytes
        The encoded file; TIFF pages follow each other, GIF and WebP frames keep
        ``metadata["durations"]`` and ``metadata["loop"]`` when the stack has them.

    Raises
    ------
    ImageWriteError
        If the format is unknown or cannot hold the pages.
    InvalidParameterError
        If ``quality`` is not None or an integer from 1 to 100.

    Examples
    --------
    >>> import numpy as np
    >>> encode_stack(np.zeros((3, 2, 2), dtype=np.float32), "tiff")[:2]
    b'II'
    """
    image_format = _normalise_format(format, name)
    _check_quality(quality)
    pages, alpha, metadata = _stack_parts(stack, name)
    return _encode_pages(pages, alpha, image_format, metadata, quality, name)


def _check_quality(quality: int | None) -> None:
    if quality is None:
        return
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise InvalidParameterError(
            f"quality must be an integer from 1 to 100 or None, got {quality!r}"
        )


def _parts(
    image: ImageFile | np.ndarray, name: str
) -> tuple[np.ndarray, np.ndarray | None, Mapping[str, Any]]:
    """Pixels, alpha (split off a 2- or 4-channel array) and metadata of what is to be saved."""
    if isinstance(image, ImageFile):
        pixels, alpha = _split_alpha(image.pixels, image.alpha, name)
        return pixels, alpha, image.metadata
    pixels, alpha = _split_alpha(np.asarray(image), None, name)
    return pixels, alpha, {}


def _stack_parts(
    stack: ImageStack | np.ndarray, name: str
) -> tuple[np.ndarray, np.ndarray | None, Mapping[str, Any]]:
    """Pages ``(P, H, W[, 3])``, alpha ``(P, H, W)`` and metadata of a stack to be saved."""
    if isinstance(stack, ImageStack):
        pages, alpha, metadata = np.asarray(stack.pixels), stack.alpha, stack.metadata
    else:
        pages, alpha, metadata = np.asarray(stack), None, {}
    if pages.ndim not in (3, 4) or pages.shape[0] == 0:
        raise ImageWriteError(
            f"{name}: cannot write a stack of shape {pages.shape} "
            "(expected (P, H, W) or (P, H, W, C) with C from 1 to 4)"
        )
    if pages.ndim == 4 and pages.shape[-1] == 1:
        pages = pages[..., 0]
    if pages.ndim == 4 and pages.shape[-1] in (2, 4) and alpha is None:
        alpha = pages[..., -1]
        pages = pages[..., :-1]
        if pages.shape[-1] == 1:
            pages = pages[..., 0]
    checked = [
        _split_alpha(pages[index], None if alpha is None else alpha[index], name)
        for index in range(pages.shape[0])
    ]
    pixels = np.stack([page for page, _ in checked])
    if alpha is None:
        return pixels, None, metadata
    alphas = [page_alpha for _, page_alpha in checked if page_alpha is not None]
    return pixels, np.stack(alphas), metadata


def _split_alpha(
    pixels: np.ndarray, alpha: np.ndarray | None, name: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate shapes; split a trailing alpha channel off 2- and 4-channel arrays."""
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    if pixels.ndim == 3 and pixels.shape[-1] in (2, 4) and alpha is None:
        alpha = pixels[..., -1]
        pixels = pixels[..., :-1]
        if pixels.shape[-1] == 1:
            pixels = pixels[..., 0]
    valid = pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[-1] == 3)
    if not valid or pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise ImageWriteError(
            f"{name}: cannot write pixels of shape {pixels.shape} "
            "(expected (H, W), (H, W, 2), (H, W, 3) or (H, W, 4))"
        )
    if pixels.dtype.kind not in "buif":
        raise ImageWriteError(f"{name}: cannot write pixels of dtype {pixels.dtype}")
    if alpha is not None:
        alpha = np.asarray(alpha)
        if alpha.shape != pixels.shape[:2]:
            raise ImageWriteError(
                f"{name}: alpha of shape {alpha.shape} does not match pixels of shape "
                f"{pixels.shape}"
            )
        if alpha.dtype.kind not in "buif":
            raise ImageWriteError(f"{name}: cannot write alpha of dtype {alpha.dtype}")
    return pixels, alpha


# Formats that keep every sample type; the others store 8 bits (PNG also 16).
_ANY_DTYPE_FORMATS = frozenset(spec.name for spec in formats.FORMATS if spec.any_dtype)
_MULTI_PAGE_FORMATS = frozenset(spec.name for spec in formats.FORMATS if spec.multi_page)


def _fit_dtype(
    pixels: np.ndarray, alpha: np.ndarray | None, image_format: str, name: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """Convert pixels (and alpha, to the pixels' dtype) to what ``image_format`` stores."""
    if pixels.dtype == np.bool_:
        pixels = pixels.astype(np.uint8) * np.uint8(255)
    kind, dtype = pixels.dtype.kind, pixels.dtype
    if image_format in _ANY_DTYPE_FORMATS:
        target = dtype
    elif kind == "f":
        target = np.dtype(np.uint8)
    elif dtype == np.uint8 or (dtype == np.uint16 and image_format == "PNG"):
        target = dtype
    elif dtype == np.uint16:
        target = np.dtype(np.uint8)
    else:
        raise ImageWriteError(
            f"{name}: {_FORMAT_TITLES[image_format]} cannot store {dtype} pixels "
            "(use .tif or .npy to keep them, or convert to uint8, uint16 or float)"
        )
    pixels = _convert_dtype(pixels, target)
    if alpha is not None:
        alpha = _convert_dtype(alpha, target)
    return np.ascontiguousarray(pixels), None if alpha is None else np.ascontiguousarray(alpha)


def _encode(
    pixels: np.ndarray,
    alpha: np.ndarray | None,
    image_format: str,
    metadata: Mapping[str, Any],
    quality: int | None,
    name: str,
) -> bytes:
    """Encode one image (``pixels`` ``(H, W[, 3])``)."""
    return _encode_pages(
        pixels[None], None if alpha is None else alpha[None], image_format, metadata, quality, name
    )


def _encode_pages(
    pages: np.ndarray,
    alpha: np.ndarray | None,
    image_format: str,
    metadata: Mapping[str, Any],
    quality: int | None,
    name: str,
) -> bytes:
    """Encode ``pages`` ``(P, H, W[, 3])`` with alpha ``(P, H, W)`` into one file."""
    title = _FORMAT_TITLES[image_format]
    if pages.shape[0] > 1 and image_format not in _MULTI_PAGE_FORMATS:
        raise ImageWriteError(
            f"{name}: {title} holds one image, not {pages.shape[0]} pages "
            "(use .tif, .gif, .webp or .npy for stacks)"
        )
    if image_format == "JPEG":
        alpha = None
    pages, alpha = _fit_dtype(pages, alpha, image_format, name)
    # The table's row names the encoder defined in this module (_encode_png, ...).
    encoder: Callable[[np.ndarray, np.ndarray | None, Mapping[str, Any], int | None], bytes] = (
        globals()[formats.by_name(image_format).encoder]
    )
    try:
        return encoder(pages, alpha, metadata, quality)
    except Exception as error:
        if not _carried(metadata):
            raise ImageWriteError(
                f"{name}: cannot encode {title} image ({_one_line(error)})"
            ) from None
    # Metadata is carried on a best-effort basis: a block the encoder rejects is left out.
    try:
        return encoder(pages, alpha, _layout_only(metadata), quality)
    except Exception as error:
        raise ImageWriteError(f"{name}: cannot encode {title} image ({_one_line(error)})") from None


# Entries of metadata that describe how to encode, not what the image carries.
_ENCODING_KEYS = ("jpeg_qtables", "jpeg_subsampling", "webp_lossless", "durations", "loop")


def _carried(metadata: Mapping[str, Any]) -> bool:
    return any(key not in _ENCODING_KEYS for key in metadata)


def _layout_only(metadata: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in metadata.items() if key in _ENCODING_KEYS}


def _with_alpha(pixels: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    if alpha is None:
        return pixels
    if pixels.ndim == alpha.ndim:  # grey: (H, W) or pages (P, H, W)
        return np.stack([pixels, alpha], axis=-1)
    return np.concatenate([pixels, alpha[..., None]], axis=-1)


def _dpi(metadata: Mapping[str, Any]) -> tuple[float, float] | None:
    dpi = metadata.get("dpi")
    if dpi is None:
        return None
    x_dpi, y_dpi = (float(value) for value in dpi)
    return (x_dpi, y_dpi) if x_dpi > 0 and y_dpi > 0 else None


def _pillow_options(metadata: Mapping[str, Any], *, exif: bool = True) -> dict[str, Any]:
    options: dict[str, Any] = {}
    dpi = _dpi(metadata)
    if dpi is not None:
        options["dpi"] = dpi
    if metadata.get("icc_profile"):
        options["icc_profile"] = bytes(metadata["icc_profile"])
    if exif and metadata.get("exif"):
        options["exif"] = bytes(metadata["exif"])
    return options


def _save_with_pillow(array: np.ndarray, image_format: str, **options: Any) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=image_format, **options)
    return buffer.getvalue()


def _first(pages: np.ndarray, alpha: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    return pages[0], None if alpha is None else alpha[0]


def _encode_png(
    pages: np.ndarray, alpha: np.ndarray | None, metadata: Mapping[str, Any], quality: int | None
) -> bytes:
    pixels, alpha = _first(pages, alpha)
    if pixels.dtype == np.uint8:
        return _encode_png8(_with_alpha(pixels, alpha), metadata)
    if pixels.ndim == 2 and alpha is None:
        # Pillow writes 16-bit grey (mode I;16) correctly.
        return _save_with_pillow(pixels, "PNG", **_pillow_options(metadata))
    return _encode_png16(pixels, alpha, metadata)


#: zlib effort of 8-bit PNG output. On a denoised 12-megapixel colour photo imagecodecs takes
#: 0.6 s at level 2 against 2.2 s at level 6 (Pillow's default, 7 s under load there), for a
#: file 18 % larger (benchmarks/bench_photo.py).
PNG_LEVEL = 2


def _encode_png8(array: np.ndarray, metadata: Mapping[str, Any]) -> bytes:
    """8-bit grey, grey+alpha, RGB or RGBA PNG with imagecodecs (libpng with a fast zlib
    level), adding the pHYs, iCCP and eXIf chunks Pillow would write."""
    import imagecodecs

    encoded = bytes(imagecodecs.png_encode(np.ascontiguousarray(array), level=PNG_LEVEL))
    return _with_png_metadata(encoded, metadata)


def _png_chunk(chunk_type: bytes, payload: bytes) -> bytes:
    body = chunk_type + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


def _with_png_metadata(encoded: bytes, metadata: Mapping[str, Any]) -> bytes:
    """A PNG from libpng with the dpi (pHYs), ICC profile (iCCP) and EXIF (eXIf) chunks of
    ``metadata`` added after IHDR."""
    extra = b""
    dpi = _dpi(metadata)
    if dpi is not None:
        # Pixels per metre, unit 1 (metre).
        density = struct.pack(">IIB", round(dpi[0] / 0.0254), round(dpi[1] / 0.0254), 1)
        extra += _png_chunk(b"pHYs", density)
    if metadata.get("icc_profile"):
        profile = zlib.compress(bytes(metadata["icc_profile"]))
        extra += _png_chunk(b"iCCP", b"ICC Profile\x00\x00" + profile)
    if metadata.get("exif"):
        exif = bytes(metadata["exif"])
        extra += _png_chunk(b"eXIf", exif.removeprefix(_EXIF_PREFIX))
    if not extra:
        return encoded
    # The signature (8 bytes) and IHDR (25 bytes) come first; pHYs, iCCP and eXIf must
    # precede IDAT.
    return encoded[:33] + extra + encoded[33:]


def _encode_png16(
    pixels: np.ndarray, alpha: np.ndarray | None, metadata: Mapping[str, Any]
) -> bytes:
    """Write 16-bit grey+alpha, RGB or RGBA PNG with imagecodecs (libpng), adding pHYs, iCCP
    and eXIf chunks."""
    import imagecodecs

    _quieten("imagecodecs")
    # zlib level 1 and the SUB filter on every row (OpenCV's fast setting without its RLE
    # strategy): on a noisy 4 MP 16-bit RGB image 0.5 s against 0.8 s with libpng's defaults,
    # for a file 1.5 % larger (20.1 against 19.8 MiB; pypng's was 22.1). Measured.
    array = np.ascontiguousarray(_with_alpha(pixels, alpha))
    codec = imagecodecs.PNG
    encoded = bytes(
        imagecodecs.png_encode(array, level=codec.COMPRESSION.SPEED, filter=codec.FILTER.SUB)
    )
    return _with_png_metadata(encoded, metadata)


def _encode_jpeg(
    pages: np.ndarray, alpha: np.ndarray | None, metadata: Mapping[str, Any], quality: int | None
) -> bytes:
    pixels, _ = _first(pages, alpha)
    options = _pillow_options(metadata)
    colour = pixels.ndim == 3
    subsampling = metadata.get("jpeg_subsampling")
    tables = metadata.get("jpeg_qtables")
    if colour and subsampling in (0, 1, 2):
        options["subsampling"] = subsampling
    if quality is None and tables and (len(tables) >= 2 or not colour):
        # The input's own tables: the output has the input's quality, whatever it was.
        options["qtables"] = [list(table) for table in tables][: 2 if colour else 1]
        return _save_with_pillow(pixels, "JPEG", **options)
    quality = 95 if quality is None else quality
    if colour and "subsampling" not in options:
        options["subsampling"] = 0 if quality >= 90 else 2  # 4:4:4, else libjpeg's 4:2:0
    return _save_with_pillow(pixels, "JPEG", quality=quality, **options)


# TIFF tags that are also EXIF IFD0 text tags: carried between TIFF and EXIF blocks.
_TIFF_TEXT_TAGS = {
    270: "ImageDescription",
    271: "Make",
    272: "Model",
    305: "Software",
    306: "DateTime",
    315: "Artist",
    33432: "Copyright",
}


def _exif_text_tags(exif: bytes) -> dict[int, str]:
    """The IFD0 text tags of an EXIF block that a TIFF can hold as its own tags."""
    from PIL import Image

    tags: dict[int, str] = {}
    with contextlib.suppress(Exception):
        parsed = Image.Exif()
        parsed.load(exif)
        for code in _TIFF_TEXT_TAGS:
            value = parsed.get(code)
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            if isinstance(value, str) and value and value.isascii():
                tags[code] = value.rstrip("\x00")
    return tags


def _encode_tiff(
    pages: np.ndarray, alpha: np.ndarray | None, metadata: Mapping[str, Any], quality: int | None
) -> bytes:
    import tifffile

    options: dict[str, Any] = {}
    dpi = _dpi(metadata)
    if dpi is not None:
        options.update(resolution=dpi, resolutionunit="INCH")
    if metadata.get("icc_profile"):
        options["iccprofile"] = bytes(metadata["icc_profile"])
    if alpha is not None:
        options["extrasamples"] = ("unassalpha",)
    if metadata.get("exif"):
        texts = _exif_text_tags(bytes(metadata["exif"]))
        if 270 in texts:
            options["description"] = texts.pop(270)
        if 305 in texts:
            options["software"] = texts.pop(305)
        options["extratags"] = [(code, "s", 0, value, True) for code, value in texts.items()]
    buffer = io.BytesIO()
    with tifffile.TiffWriter(buffer) as writer:
        for index in range(pages.shape[0]):
            writer.write(
                _with_alpha(pages[index], None if alpha is None else alpha[index]),
                photometric="rgb" if pages.ndim == 4 else "minisblack",
                planarconfig="contig",
                compression="zlib",
                metadata=None,
                **options,
            )
    return buffer.getvalue()


def _pillow_frames(pages: np.ndarray, alpha: np.ndarray | None, mode: str) -> list[Any]:
    """Pillow images of 8-bit pages, grey made RGB (``mode`` is "RGB" or "RGBA")."""
    from PIL import Image

    rgb = pages if pages.ndim == 4 else np.repeat(pages[..., None], 3, axis=-1)
    if mode == "RGBA":
        opaque = np.full(pages.shape[:3], 255, np.uint8)
        rgb = np.concatenate([rgb, (opaque if alpha is None else alpha)[..., None]], axis=-1)
    return [Image.fromarray(np.ascontiguousarray(page)) for page in rgb]


def _animation_options(metadata: Mapping[str, Any], count: int) -> dict[str, Any]:
    options: dict[str, Any] = {}
    durations = metadata.get("durations")
    if count > 1:
        options["save_all"] = True
        if isinstance(durations, (list, tuple)) and len(durations) == count:
            options["duration"] = [int(value) for value in durations]
        options["loop"] = int(metadata.get("loop", 0))
    return options


def _encode_webp(
    pages: np.ndarray, alpha: np.ndarray | None, metadata: Mapping[str, Any], quality: int | None
) -> bytes:
    frames = _pillow_frames(pages, alpha, "RGB" if alpha is None else "RGBA")
    options = _pillow_options(metadata)
    options.pop("dpi", None)  # WebP has no resolution field
    options.update(_animation_options(metadata, len(frames)))
    if quality is None and metadata.get("webp_lossless", True):
        # exact: keep the colour of fully transparent pixels, which the encoder may change.
        options.update(lossless=True, quality=100, exact=True)
    else:
        options.update(quality=95 if quality is None else quality)
    buffer = io.BytesIO()
    frames[0].save(buffer, format="WEBP", append_images=frames[1:], **options)
    return buffer.getvalue()


def _gif_frame(pixels: np.ndarray, alpha: np.ndarray | None) -> Any:
    """One 8-bit page as a palette image: exact for at most 256 colours (255 with
    transparency), else median-cut without dithering. Alpha below 128 is transparent."""
    from PIL import Image

    transparent = None if alpha is None else alpha < 128
    if pixels.ndim == 2 and transparent is None:
        return Image.fromarray(pixels, mode="L")
    rgb = pixels if pixels.ndim == 3 else np.repeat(pixels[..., None], 3, axis=-1)
    limit = 256 if transparent is None else 255
    colours, indices = np.unique(rgb.reshape(-1, 3), axis=0, return_inverse=True)
    if len(colours) <= limit:
        palette = colours.astype(np.uint8)
        index_image = indices.reshape(rgb.shape[:2]).astype(np.uint8)
    else:
        quantised = Image.fromarray(np.ascontiguousarray(rgb)).quantize(
            colors=limit, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
        )
        index_image = np.array(quantised)
        palette = np.array((quantised.getpalette() or [])[: 3 * limit], np.uint8).reshape(-1, 3)
    if transparent is not None:
        index_image = index_image.copy()
        index_image[transparent] = len(palette)
        palette = np.concatenate([palette, np.zeros((1, 3), np.uint8)])
    frame = Image.fromarray(index_image, mode="P")
    frame.putpalette(palette.reshape(-1).tolist())
    if transparent is not None:
        frame.info["transparency"] = len(palette) - 1
    return frame


def _encode_gif(
    pages: np.ndarray, alpha: np.ndarray | None, metadata: Mapping[str, Any], quality: int | None
) -> bytes:
    frames = [
        _gif_frame(pages[index], None if alpha is None else alpha[index])
        for index in range(pages.shape[0])
    ]
    options = _animation_options(metadata, len(frames))
    if len(frames) > 1:
        # Replace each frame whole (disposal 2 = restore to background), so transparent
        # pixels of one frame never show the one before.
        options["disposal"] = 2
    if "transparency" in frames[0].info:
        options["transparency"] = frames[0].info["transparency"]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", append_images=frames[1:], optimize=False, **options)
    return buffer.getvalue()


def _encode_npy(
    pages: np.ndarray, alpha: np.ndarray | None, metadata: Mapping[str, Any], quality: int | None
) -> bytes:
    array = pages[0] if pages.shape[0] == 1 else pages
    if alpha is not None:
        array = _with_alpha(array, alpha[0] if pages.shape[0] == 1 else alpha)
    elif array.ndim == 3 and pages.ndim == 3 and array.shape[-1] <= 4:
        # (P, H, W) with W <= 4 would read back as one (H, W, C) image: say "grey" explicitly.
        array = array[..., None]
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _encode_bmp(
    pages: np.ndarray, alpha: np.ndarray | None, metadata: Mapping[str, Any], quality: int | None
) -> bytes:
    pixels, alpha = _first(pages, alpha)
    dpi = _dpi(metadata)
    if alpha is None:
        return _save_with_pillow(pixels, "BMP", **({"dpi": dpi} if dpi else {}))
    return _encode_bmp_rgba(pixels, alpha, dpi)


def _encode_bmp_rgba(
    pixels: np.ndarray, alpha: np.ndarray, dpi: tuple[float, float] | None
) -> bytes:
    """Write a 32-bit BMP with an alpha mask (BITMAPV4HEADER, BI_BITFIELDS).

    Pillow writes RGBA as 32-bit BI_RGB, whose fourth byte readers ignore, so the alpha would
    be lost; a V4 header with explicit masks is what readers (Pillow included) take as alpha.
    """
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=-1)
    height, width = pixels.shape[:2]
    bgra = np.empty((height, width, 4), dtype=np.uint8)
    bgra[..., 0] = pixels[..., 2]
    bgra[..., 1] = pixels[..., 1]
    bgra[..., 2] = pixels[..., 0]
    bgra[..., 3] = alpha
    pixel_bytes = bgra[::-1].tobytes()  # bottom-up rows; 4 bytes a pixel needs no padding
    x_ppm, y_ppm = (round(value / 0.0254) for value in dpi) if dpi else (0, 0)
    header_size, offset = 108, 14 + 108
    info_header = struct.pack(
        "<IiiHHIIiiII4I4s36s3I",
        header_size,
        width,
        height,
        1,  # planes
        32,  # bits per pixel
        3,  # BI_BITFIELDS
        len(pixel_bytes),
        x_ppm,
        y_ppm,
        0,  # colours used
        0,  # important colours
        0x00FF0000,  # red mask
        0x0000FF00,  # green mask
        0x000000FF,  # blue mask
        0xFF000000,  # alpha mask
        b"BGRs",  # LCS_sRGB, stored little-endian
        b"\x00" * 36,  # colour space end points (unused with sRGB)
        0,
        0,
        0,  # gamma (unused with sRGB)
    )
    file_header = struct.pack("<2sIHHI", b"BM", offset + len(pixel_bytes), 0, 0, offset)
    return file_header + info_header + pixel_bytes


def save_image(
    path: str | os.PathLike[str],
    image: ImageFile | np.ndarray,
    *,
    like: ImageFile | None = None,
    format: str | None = None,
    overwrite: bool = False,
    quality: int | None = None,
) -> Path:
    """Write an image file atomically, keeping the dtype, alpha and metadata of ``like``.

    The image is encoded in memory, written to a hidden temporary file in the target's
    folder (``.<name>.tvdenoise-<random>.tmp``), flushed to disk, and only then moved to
    ``path``, so ``path`` never holds a partial image and a failed write leaves nothing
    behind (a killed process may leave the temporary file: see :func:`clean_stale_temps`).
    Without ``overwrite``, an existing ``path`` is never replaced, not even by a file that
    appears while the image is being written (the move is a hard link, which refuses to
    replace; where the file system has no hard links an existence check guards the move).

    Parameters
    ----------
    path : str or os.PathLike
        The file to write. Its folder must exist.
    image : ImageFile or numpy.ndarray
        The image; arrays are ``(H, W)``, ``(H, W, 2)``, ``(H, W, 3)`` or ``(H, W, 4)``
        (the last channel of 2- and 4-channel arrays is alpha), integer, boolean or float.
    like : ImageFile, optional
        The image this one was made from (typically the loaded input). The output then has
        ``like``'s dtype (floats are converted with :func:`from_float`), ``like``'s alpha
        when ``image`` has none, ``like``'s metadata (``image``'s own entries win) and, when
        ``path`` has no extension, ``like``'s format.
    format : str, optional
        The format to write, overriding the one ``path``'s extension names.
    overwrite : bool, optional
        Replace ``path`` if it exists. Default False.
    quality : int or None, optional
        JPEG and WebP quality from 1 to 100; None (default) keeps a JPEG input's quality
        and subsampling, else 95 and 4:4:4, and writes WebP lossless. See
        :func:`encode_image`.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    ImageWriteError
        If the format is unknown or cannot hold the image, ``path`` exists (and not
        ``overwrite``) or is a folder, its folder is missing, or writing fails (permission,
        disk full, ...); the message starts with the path.
    InvalidParameterError
        If ``quality`` is not None or an integer from 1 to 100.

    Notes
    -----
    JPEG holds neither alpha nor more than 8 bits: alpha is dropped and 16-bit or float
    images are converted to 8 bits. See the module documentation for the other formats.

    Examples
    --------
    >>> image = load_image("photo.png")  # doctest: +SKIP
    >>> save_image("photo_denoised.png", denoised_float_pixels, like=image)  # doctest: +SKIP
    PosixPath('photo_denoised.png')
    """
    name = os.fspath(path)
    target = Path(name)
    image_format = _target_format(target, name, format, like)
    pixels, alpha, metadata = _take_from_original(*_parts(image, name), like, name, "image")
    _check_quality(quality)

    _check_target(target, name, overwrite)
    encoded = _encode(pixels, alpha, image_format, metadata, quality, name)
    _write_atomically(target, encoded, name, overwrite)
    return target


def save_stack(
    path: str | os.PathLike[str],
    stack: ImageStack | np.ndarray,
    *,
    like: ImageStack | None = None,
    format: str | None = None,
    overwrite: bool = False,
    quality: int | None = None,
) -> Path:
    """Write pages as one multi-page TIFF, animated GIF or WebP, or ``.npy``, atomically.

    The counterpart of :func:`load_stack`, with the guarantees of :func:`save_image`.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write. Its folder must exist.
    stack : ImageStack or numpy.ndarray
        An :class:`ImageStack`, or an array ``(P, H, W)`` or ``(P, H, W, C)`` with ``C``
        from 1 to 4 (the last channel of 2 and 4 is alpha).
    like : ImageStack, optional
        The stack this one was made from: its dtype, alpha (when ``stack`` has none),
        metadata (frame durations included) and, when ``path`` has no extension, format.
    format : str, optional
        The format to write, overriding ``path``'s extension.
    overwrite : bool, optional
        Replace ``path`` if it exists. Default False.
    quality : int or None, optional
        As for :func:`save_image`.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    ImageWriteError
        As :func:`save_image`, and if the format holds one image (PNG, JPEG, BMP) and the
        stack has several pages.
    InvalidParameterError
        If ``quality`` is not None or an integer from 1 to 100.

    Examples
    --------
    >>> stack = load_stack("timelapse.tif")  # doctest: +SKIP
    >>> save_stack("timelapse_denoised.tif", denoised_float_pages, like=stack)  # doctest: +SKIP
    PosixPath('timelapse_denoised.tif')
    """
    name = os.fspath(path)
    target = Path(name)
    image_format = _target_format(target, name, format, like)
    pages, alpha, metadata = _take_from_original(*_stack_parts(stack, name), like, name, "stack")
    _check_quality(quality)

    _check_target(target, name, overwrite)
    encoded = _encode_pages(pages, alpha, image_format, metadata, quality, name)
    _write_atomically(target, encoded, name, overwrite)
    return target


def _take_from_original(
    pixels: np.ndarray,
    alpha: np.ndarray | None,
    own_metadata: Mapping[str, Any],
    like: ImageFile | ImageStack | None,
    name: str,
    kind: str,
) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """What an output takes from the ``like`` it was made from: its dtype, its alpha when the
    output has none, and its metadata (under the output's own). ``kind`` is "image" (alpha
    (H, W)) or "stack" (alpha (P, H, W))."""
    metadata: dict[str, Any] = {}
    if like is not None:
        metadata.update(like.metadata)
        pixels = _convert_dtype(pixels, like.pixels.dtype)
        if alpha is None and like.alpha is not None:
            alpha = like.alpha
            dims, what = (2, "pixels") if kind == "image" else (3, "pages")
            if alpha.shape != pixels.shape[:dims]:
                raise ImageWriteError(
                    f"{name}: the alpha of the original {kind} has shape {alpha.shape}, "
                    f"the {what} to write have shape {pixels.shape}"
                )
    metadata.update(own_metadata)
    return pixels, alpha, metadata


def _target_format(
    target: Path, name: str, format: str | None, like: ImageFile | ImageStack | None
) -> str:
    if format is not None:
        return _normalise_format(format, name)
    if target.suffix == "" and like is not None:
        return _normalise_format(like.format, name)
    return output_format_for(name)
