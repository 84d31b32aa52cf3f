"""Reading and writing image files: formats, bit depths, alpha, metadata and atomic writes.

This module is the only place that touches image files. It reads PNG, JPEG, TIFF and BMP into
numpy arrays of the file's own dtype (``uint8``, ``uint16``, ``float32``, ...) with the alpha
channel split off, and writes such arrays back with the same dtype, alpha and metadata where
the output format allows. It does not import torch, so the command line's ``--help`` path and
scripts that only convert files stay fast.

Which library does what, and why:

- Pillow decodes and encodes 8-bit images of every format and 16-bit grey PNG (mode ``I;16``).
- pypng reads and writes 16-bit grey+alpha, RGB and RGBA PNG, which Pillow silently reduces
  to 8 bits. pypng is pure Python: such files decode at about one second per megapixel.
- tifffile reads and writes TIFF, keeping ``uint16``, ``float32`` and the other sample types
  exactly. TIFF compressions tifffile cannot decode without the optional ``imagecodecs``
  package (LZW, JPEG, ...) are read through Pillow when Pillow keeps all the bits (8-bit
  images, single-channel images); otherwise the error says to install ``imagecodecs``.

What each format can hold, and what :func:`save_image` does about the rest:

======  ==========================  ===================  ==============================
format  pixel types written         alpha                metadata written
======  ==========================  ===================  ==============================
PNG     uint8, uint16               kept                 dpi, icc_profile, exif
TIFF    every integer and float     kept                 dpi, icc_profile
JPEG    uint8 (others converted)    dropped              dpi, icc_profile, exif
BMP     uint8 (others converted)    kept (grey -> RGBA)  dpi
======  ==========================  ===================  ==============================

Conversions are done with :func:`to_float` and :func:`from_float` (scaling by the dtype's
maximum, rounding half to even): a float array saved as PNG, JPEG or BMP becomes ``uint8``,
a ``uint16`` image saved as JPEG or BMP becomes ``uint8``. JPEG stores no alpha, so alpha is
dropped; BMP stores alpha only in 32-bit colour files, so grey+alpha is written as RGBA.

EXIF orientation is applied on reading, so ``pixels`` are upright, and the orientation tag is
removed from the carried EXIF block so that the output is not rotated a second time. A TIFF's
own Orientation tag is applied the same way.

Every failure raises :class:`~tvdenoise.errors.ImageReadError` or
:class:`~tvdenoise.errors.ImageWriteError` with a one-line message that starts with the file's
path, for example ``photo.png: no such file``.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import secrets
import struct
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tvdenoise.errors import ImageReadError, ImageWriteError, InvalidParameterError

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "ImageFile",
    "decode_image",
    "encode_image",
    "from_float",
    "load_image",
    "output_format_for",
    "save_image",
    "to_float",
]

_EXTENSION_FORMATS: dict[str, str] = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}

#: File name extensions (lower case, with the dot) that :func:`load_image` and
#: :func:`save_image` handle; matching is case-insensitive.
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(_EXTENSION_FORMATS)

_FORMAT_NAMES: dict[str, str] = {
    "PNG": "PNG",
    "JPEG": "JPEG",
    "JPG": "JPEG",
    "TIFF": "TIFF",
    "TIF": "TIFF",
    "BMP": "BMP",
}

_SUPPORTED_LIST = ", ".join(sorted(SUPPORTED_EXTENSIONS))

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_EXIF_PREFIX = b"Exif\x00\x00"
_ORIENTATION_TAG = 0x0112

# Magic numbers of formats users are likely to try, to name them in the error message.
_OTHER_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"8BPS", "PSD"),
    (b"%PDF", "PDF"),
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
        ``"PNG"``, ``"JPEG"``, ``"TIFF"`` or ``"BMP"``: what the file's content is (not its
        name's extension).
    path : pathlib.Path or None
        Where the image was read from; None for images decoded from bytes.
    metadata : dict
        What can be carried to an output file: ``"dpi"`` (a pair of floats),
        ``"icc_profile"`` (bytes) and ``"exif"`` (bytes starting with ``b"Exif\\0\\0"``, the
        orientation tag removed), each present only when the file has it.

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


# --------------------------------------------------------------------------------------------
# Value conversion
# --------------------------------------------------------------------------------------------


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
    info = np.iinfo(target)
    scaled = np.rint(values.astype(np.float64) * float(info.max))
    scaled = np.nan_to_num(scaled, nan=0.0, posinf=float(info.max), neginf=float(info.min))
    return np.clip(scaled, info.min, info.max).astype(target)


def _convert_dtype(values: np.ndarray, target: np.dtype) -> np.ndarray:
    """Convert between dtypes through the [0, 1] float scale; a no-op for equal dtypes."""
    if values.dtype == target:
        return values
    return from_float(to_float(values), target)


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
        ``"PNG"``, ``"JPEG"``, ``"TIFF"`` or ``"BMP"``.

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
            f"{name}: unsupported format {format!r} (supported: BMP, JPEG, PNG, TIFF)"
        ) from None


def _sniff(data: bytes) -> str | None:
    """Name the format of encoded image bytes from their magic number, or None."""
    if data.startswith(_PNG_SIGNATURE):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if data.startswith(b"BM"):
        return "BMP"
    return None


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def load_image(path: str | os.PathLike[str]) -> ImageFile:
    """Read an image file into an :class:`ImageFile`.

    The format is recognised from the content, not the extension. Palette images become RGB
    (RGBA when the palette has transparency), 1-bit images become ``uint8`` grey with values
    0 and 255, CMYK and YCbCr become RGB. EXIF orientation is applied. Of a TIFF, the only
    image is read; TIFFs with several full-size pages are refused. The file is only read.

    Parameters
    ----------
    path : str or os.PathLike
        The file to read.

    Returns
    -------
    ImageFile
        Pixels in the file's dtype with alpha split off, the format, the path and the
        metadata that can be carried to an output file.

    Raises
    ------
    ImageReadError
        If the file is missing, a directory, unreadable, empty, not an image, truncated or
        in an unsupported format; the message starts with the path.

    Examples
    --------
    >>> image = load_image("photo.png")  # doctest: +SKIP
    >>> image.pixels.shape, image.pixels.dtype, image.alpha is None  # doctest: +SKIP
    ((512, 512, 3), dtype('uint8'), True)
    """
    name = os.fspath(path)
    file_path = Path(name)
    try:
        if file_path.is_dir():
            raise ImageReadError(f"{name}: is a directory")
        with open(file_path, "rb") as stream:
            data = stream.read()
    except ImageReadError:
        raise
    except (FileNotFoundError, NotADirectoryError):
        raise ImageReadError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ImageReadError(f"{name}: is a directory") from None
    except PermissionError:
        raise ImageReadError(f"{name}: permission denied") from None
    except OSError as error:
        reason = error.strerror or _one_line(error)
        raise ImageReadError(f"{name}: cannot read ({reason})") from None
    image = decode_image(data, name=name)
    image.path = file_path
    return image


def decode_image(data: bytes, name: str = "<stdin>") -> ImageFile:
    """Decode an image from bytes, as :func:`load_image` does from a file.

    Parameters
    ----------
    data : bytes
        The encoded image (PNG, JPEG, TIFF or BMP), for example read from standard input.
    name : str, optional
        What to call the image in error messages; its extension, if any, is only used to
        explain a refusal.

    Returns
    -------
    ImageFile
        The decoded image, with ``path`` None.

    Raises
    ------
    ImageReadError
        If ``data`` is empty, not an image, truncated or in an unsupported format.

    Examples
    --------
    >>> import numpy as np
    >>> encoded = encode_image(np.zeros((2, 3), dtype=np.uint8), "PNG")
    >>> image = decode_image(encoded)
    >>> image.format, image.pixels.shape, image.pixels.dtype
    ('PNG', (2, 3), dtype('uint8'))
    """
    data = bytes(data)
    if not data:
        raise ImageReadError(f"{name}: empty file (0 bytes), not an image")
    image_format = _sniff(data)
    if image_format is None:
        raise ImageReadError(f"{name}: {_unknown_content_reason(data, name)}")
    if image_format == "TIFF":
        pixels, alpha, metadata, orientation = _decode_tiff(data, name)
    elif image_format == "PNG" and _png_needs_pypng(data):
        pixels, alpha, metadata, orientation = _decode_png16(data, name)
    else:
        pixels, alpha, metadata, orientation = _decode_with_pillow(data, image_format, name)
    pixels = _orient(pixels, orientation)
    if alpha is not None:
        alpha = _orient(alpha, orientation)
    return ImageFile(pixels=pixels, alpha=alpha, format=image_format, metadata=metadata)


def _unknown_content_reason(data: bytes, name: str) -> str:
    for signature, format_name in _OTHER_SIGNATURES:
        if data.startswith(signature):
            return f"unsupported format {format_name} (supported: BMP, JPEG, PNG, TIFF)"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "unsupported format WebP (supported: BMP, JPEG, PNG, TIFF)"
    suffix = Path(name).suffix.lower()
    if suffix and suffix not in SUPPORTED_EXTENSIONS and not name.startswith("<"):
        return _unsupported_extension(suffix)
    return "cannot decode image (truncated or not an image)"


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


def _png_needs_pypng(data: bytes) -> bool:
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
                metadata["exif"] = info["exif"]
            else:
                metadata["exif"] = exif.tobytes()
    except Exception:  # corrupt EXIF must not make a readable image unreadable
        metadata.pop("exif", None)
    if orientation not in range(1, 9):
        orientation = 1
    return metadata, orientation


def _decode_with_pillow(data: bytes, image_format: str, name: str) -> _Decoded:
    from PIL import Image

    try:
        image: Image.Image = Image.open(io.BytesIO(data), formats=[image_format])
        image.load()
    except Image.DecompressionBombError as error:
        raise ImageReadError(f"{name}: image too large to decode safely ({error})") from None
    except Exception:
        raise ImageReadError(
            f"{name}: cannot decode {image_format} image (truncated or corrupt)"
        ) from None
    # A TIFF's "EXIF" in Pillow is its own tag directory (strip offsets, ...): not carried.
    metadata, orientation = _pillow_metadata(image, carry_exif=image_format != "TIFF")

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
            f"{name}: cannot decode {image_format} image (unsupported pixel mode {mode})"
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
    if array.ndim not in (2, 3):
        raise ImageReadError(
            f"{name}: cannot decode {image_format} image (unsupported pixel mode {mode})"
        )
    return np.ascontiguousarray(array), alpha, metadata, orientation


def _decode_png16(data: bytes, name: str) -> _Decoded:
    """Decode 16-bit grey+alpha, RGB and RGBA PNG with pypng; metadata through Pillow."""
    import png
    from PIL import Image

    metadata: dict[str, Any] = {}
    orientation = 1
    try:
        # Opening only parses the chunks before the pixel data (and checks the size).
        metadata, orientation = _pillow_metadata(Image.open(io.BytesIO(data), formats=["PNG"]))
    except Image.DecompressionBombError as error:
        raise ImageReadError(f"{name}: image too large to decode safely ({error})") from None
    except Exception:
        metadata, orientation = {}, 1
    try:
        width, height, rows, info = png.Reader(bytes=data).read()
        array = np.array([np.asarray(row, dtype=np.uint16) for row in rows], dtype=np.uint16)
        planes = int(info["planes"])
        array = array.reshape(height, width, planes)
    except Exception:
        raise ImageReadError(f"{name}: cannot decode PNG image (truncated or corrupt)") from None

    alpha: np.ndarray | None = None
    if planes in (2, 4):
        alpha = np.ascontiguousarray(array[..., -1])
        array = array[..., :-1]
    if planes == 2:
        array = array[..., 0]
    transparent = info.get("transparent")
    if alpha is None and transparent is not None:
        key = np.asarray(transparent, dtype=np.uint16)
        alpha = np.where(np.all(array == key, axis=-1), 0, 65535).astype(np.uint16)
    return np.ascontiguousarray(array), alpha, metadata, orientation


class _TiffFallback(Exception):
    """tifffile cannot decode this TIFF; Pillow may (the message says why not)."""


def _decode_tiff(data: bytes, name: str) -> _Decoded:
    try:
        return _decode_tiff_with_tifffile(data, name)
    except _TiffFallback as refusal:
        reason, pillow_keeps_all_bits = refusal.args
        if pillow_keeps_all_bits:
            with contextlib.suppress(ImageReadError):
                return _decode_with_pillow(data, "TIFF", name)
        raise ImageReadError(f"{name}: {reason}") from None


def _decode_tiff_with_tifffile(data: bytes, name: str) -> _Decoded:
    import tifffile

    _quieten_tifffile()

    try:
        tiff = tifffile.TiffFile(io.BytesIO(data))
    except Exception:
        raise ImageReadError(f"{name}: cannot decode TIFF image (truncated or corrupt)") from None
    with tiff:
        try:
            # Reduced-resolution pages (thumbnails, pyramid levels) do not count as images.
            every_page: list[Any] = list(tiff.pages)
            pages = [page for page in every_page if not int(page.subfiletype) & 1]
        except Exception:
            raise ImageReadError(
                f"{name}: cannot decode TIFF image (truncated or corrupt)"
            ) from None
        if not pages:
            raise ImageReadError(f"{name}: cannot decode TIFF image (truncated or corrupt)")
        if len(pages) > 1:
            raise ImageReadError(
                f"{name}: TIFF with {len(pages)} images (stacks and multi-page files are "
                "not supported; save each image as its own file)"
            )
        page = pages[0]
        bits = int(page.bitspersample)
        samples = int(page.samplesperpixel)
        pillow_keeps_all_bits = bits <= 8 or samples == 1
        photometric = page.photometric.name if page.photometric is not None else "NONE"
        if photometric not in ("MINISBLACK", "MINISWHITE", "RGB", "PALETTE"):
            raise _TiffFallback(
                f"unsupported TIFF colour model {photometric}", pillow_keeps_all_bits
            )
        try:
            array = page.asarray()
        except Exception as error:
            message = _one_line(error)
            if "imagecodecs" in message:
                compression = getattr(page.compression, "name", str(page.compression))
                reason = (
                    f"cannot decode TIFF compression {compression} "
                    "(install the 'imagecodecs' package)"
                )
            else:
                reason = "cannot decode TIFF image (truncated or corrupt)"
            raise _TiffFallback(reason, pillow_keeps_all_bits) from None
        metadata, orientation = _tiff_metadata(page)
        colormap = page.colormap if photometric == "PALETTE" else None
        axes = page.axes

    array = _tiff_to_yxs(array, axes, name)
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


def _quieten_tifffile() -> None:
    """Keep tifffile's log warnings about damaged files off stderr unless logging is set up.

    Library code does not print; the damage is reported by the error raised instead. A
    NullHandler only stops Python's last-resort output: records still propagate to handlers
    an application configures.
    """
    logger = logging.getLogger("tifffile")
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
    return metadata, orientation


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def encode_image(
    image: ImageFile | np.ndarray,
    format: str,
    *,
    quality: int = 95,
    name: str = "<output>",
) -> bytes:
    """Encode an image into the bytes of a PNG, JPEG, TIFF or BMP file.

    What each format cannot hold is converted as the module documentation's table says:
    floats become ``uint8`` (except in TIFF), ``uint16`` becomes ``uint8`` in JPEG and BMP,
    JPEG drops alpha. Metadata (``image.metadata``) is written where the format allows; if
    the encoder rejects it (an over-long EXIF block, say) the image is written without it.

    Parameters
    ----------
    image : ImageFile or numpy.ndarray
        An :class:`ImageFile`, or an array ``(H, W)`` grey, ``(H, W, 2)`` grey+alpha,
        ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA, integer, boolean or float (floats in
        [0, 1]).
    format : str
        ``"PNG"``, ``"JPEG"`` (or ``"JPG"``), ``"TIFF"`` (or ``"TIF"``) or ``"BMP"``, any
        case, with or without a leading dot.
    quality : int, optional
        JPEG quality from 1 to 100; ignored by the other formats. At 90 and above, colour is
        not subsampled (4:4:4).
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
        If ``quality`` is outside 1 to 100.

    Examples
    --------
    >>> import numpy as np
    >>> encode_image(np.zeros((2, 3, 3), dtype=np.uint16), "png")[:4]
    b'\\x89PNG'
    """
    image_format = _normalise_format(format, name)
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise InvalidParameterError(f"quality must be an integer from 1 to 100, got {quality!r}")
    pixels, alpha, metadata = _parts(image, name)
    return _encode(pixels, alpha, image_format, metadata, quality, name)


def _parts(
    image: ImageFile | np.ndarray, name: str
) -> tuple[np.ndarray, np.ndarray | None, Mapping[str, Any]]:
    """Pixels, alpha (split off a 2- or 4-channel array) and metadata of what is to be saved."""
    if isinstance(image, ImageFile):
        pixels, alpha = _split_alpha(image.pixels, image.alpha, name)
        return pixels, alpha, image.metadata
    pixels, alpha = _split_alpha(np.asarray(image), None, name)
    return pixels, alpha, {}


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


def _fit_dtype(
    pixels: np.ndarray, alpha: np.ndarray | None, image_format: str, name: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """Convert pixels (and alpha, to the pixels' dtype) to what ``image_format`` stores."""
    if pixels.dtype == np.bool_:
        pixels = pixels.astype(np.uint8) * np.uint8(255)
    kind, dtype = pixels.dtype.kind, pixels.dtype
    if image_format == "TIFF":
        target = dtype
    elif kind == "f":
        target = np.dtype(np.uint8)
    elif dtype == np.uint8 or (dtype == np.uint16 and image_format == "PNG"):
        target = dtype
    elif dtype == np.uint16:
        target = np.dtype(np.uint8)
    else:
        raise ImageWriteError(
            f"{name}: {image_format} cannot store {dtype} pixels "
            "(use .tif to keep them, or convert to uint8, uint16 or float)"
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
    quality: int,
    name: str,
) -> bytes:
    if image_format == "JPEG":
        alpha = None
    pixels, alpha = _fit_dtype(pixels, alpha, image_format, name)
    encoder = {
        "PNG": _encode_png,
        "JPEG": _encode_jpeg,
        "TIFF": _encode_tiff,
        "BMP": _encode_bmp,
    }[image_format]
    try:
        return encoder(pixels, alpha, metadata, quality)
    except Exception:
        if not metadata:
            raise ImageWriteError(f"{name}: cannot encode {image_format} image") from None
    # Metadata is carried on a best-effort basis: a block the encoder rejects is left out.
    try:
        return encoder(pixels, alpha, {}, quality)
    except Exception as error:
        raise ImageWriteError(
            f"{name}: cannot encode {image_format} image ({_one_line(error)})"
        ) from None


def _with_alpha(pixels: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    if alpha is None:
        return pixels
    if pixels.ndim == 2:
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


def _encode_png(
    pixels: np.ndarray, alpha: np.ndarray | None, metadata: Mapping[str, Any], quality: int
) -> bytes:
    if pixels.dtype == np.uint8 or (pixels.ndim == 2 and alpha is None):
        # Pillow writes 8-bit images and 16-bit grey (mode I;16) correctly.
        return _save_with_pillow(_with_alpha(pixels, alpha), "PNG", **_pillow_options(metadata))
    return _encode_png16(pixels, alpha, metadata)


def _png_chunk(chunk_type: bytes, payload: bytes) -> bytes:
    body = chunk_type + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


def _encode_png16(
    pixels: np.ndarray, alpha: np.ndarray | None, metadata: Mapping[str, Any]
) -> bytes:
    """Write 16-bit grey+alpha, RGB or RGBA PNG with pypng, adding iCCP and eXIf chunks."""
    import png

    array = _with_alpha(pixels, alpha)
    height, width = array.shape[:2]
    planes = 1 if array.ndim == 2 else array.shape[2]
    options: dict[str, Any] = {}
    dpi = _dpi(metadata)
    if dpi is not None:
        options.update(
            x_pixels_per_unit=round(dpi[0] / 0.0254),
            y_pixels_per_unit=round(dpi[1] / 0.0254),
            unit_is_meter=True,
        )
    writer = png.Writer(
        width,
        height,
        greyscale=planes in (1, 2),
        alpha=planes in (2, 4),
        bitdepth=16,
        **options,
    )
    buffer = io.BytesIO()
    writer.write(buffer, array.reshape(height, width * planes))
    encoded = buffer.getvalue()

    extra = b""
    if metadata.get("icc_profile"):
        profile = zlib.compress(bytes(metadata["icc_profile"]))
        extra += _png_chunk(b"iCCP", b"ICC Profile\x00\x00" + profile)
    if metadata.get("exif"):
        exif = bytes(metadata["exif"])
        extra += _png_chunk(b"eXIf", exif.removeprefix(_EXIF_PREFIX))
    if not extra:
        return encoded
    # The signature (8 bytes) and IHDR (25 bytes) come first; iCCP and eXIf must precede IDAT.
    return encoded[:33] + extra + encoded[33:]


def _encode_jpeg(
    pixels: np.ndarray, alpha: np.ndarray | None, metadata: Mapping[str, Any], quality: int
) -> bytes:
    options = _pillow_options(metadata)
    if quality >= 90:
        options["subsampling"] = 0
    return _save_with_pillow(pixels, "JPEG", quality=quality, **options)


def _encode_tiff(
    pixels: np.ndarray, alpha: np.ndarray | None, metadata: Mapping[str, Any], quality: int
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
    buffer = io.BytesIO()
    tifffile.imwrite(
        buffer,
        _with_alpha(pixels, alpha),
        photometric="rgb" if pixels.ndim == 3 else "minisblack",
        planarconfig="contig",
        compression="zlib",
        metadata=None,
        **options,
    )
    return buffer.getvalue()


def _encode_bmp(
    pixels: np.ndarray, alpha: np.ndarray | None, metadata: Mapping[str, Any], quality: int
) -> bytes:
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
    quality: int = 95,
) -> Path:
    """Write an image file atomically, keeping the dtype, alpha and metadata of ``like``.

    The image is encoded in memory, written to a hidden temporary file in the target's
    folder (``.<name>.<random>.tmp``), flushed to disk, and only then moved to ``path``, so
    ``path`` never holds a partial image and an interrupted write leaves nothing behind.
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
    quality : int, optional
        JPEG quality from 1 to 100. Default 95.

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
        If ``quality`` is outside 1 to 100.

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
    if format is not None:
        image_format = _normalise_format(format, name)
    elif target.suffix == "" and like is not None:
        image_format = _normalise_format(like.format, name)
    else:
        image_format = output_format_for(name)

    pixels, alpha, own_metadata = _parts(image, name)
    metadata: dict[str, Any] = {}
    if like is not None:
        metadata.update(like.metadata)
        pixels = _convert_dtype(pixels, like.pixels.dtype)
        if alpha is None and like.alpha is not None:
            alpha = like.alpha
            if alpha.shape != pixels.shape[:2]:
                raise ImageWriteError(
                    f"{name}: the alpha of the original image has shape {alpha.shape}, "
                    f"the pixels to write have shape {pixels.shape}"
                )
    metadata.update(own_metadata)
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise InvalidParameterError(f"quality must be an integer from 1 to 100, got {quality!r}")

    _check_target(target, name, overwrite)
    encoded = _encode(pixels, alpha, image_format, metadata, quality, name)
    _write_atomically(target, encoded, name, overwrite)
    return target


def _check_target(target: Path, name: str, overwrite: bool) -> None:
    """Fail early, before encoding, for targets that cannot be written."""
    if target.is_dir():
        raise ImageWriteError(f"{name}: is a directory")
    parent = target.parent
    if not parent.is_dir():
        raise ImageWriteError(f"{name}: folder '{os.fspath(parent)}' does not exist")
    if not overwrite and (target.exists() or target.is_symlink()):
        raise ImageWriteError(f"{name}: exists (use --overwrite to replace it)")


def _write_error(name: str, error: OSError) -> ImageWriteError:
    if isinstance(error, PermissionError):
        return ImageWriteError(f"{name}: permission denied")
    if isinstance(error, IsADirectoryError):
        return ImageWriteError(f"{name}: is a directory")
    if error.errno == errno.ENOSPC:
        return ImageWriteError(f"{name}: no space left on device")
    if error.errno == errno.EROFS:
        return ImageWriteError(f"{name}: read-only file system")
    reason = error.strerror or _one_line(error)
    return ImageWriteError(f"{name}: cannot write ({reason})")


# errno values with which os.link says "this file system has no hard links".
_NO_HARD_LINKS = {
    code
    for code in (
        getattr(errno, "EPERM", None),
        getattr(errno, "ENOTSUP", None),
        getattr(errno, "EOPNOTSUPP", None),
        getattr(errno, "ENOSYS", None),
        getattr(errno, "EMLINK", None),
        getattr(errno, "EXDEV", None),
    )
    if code is not None
}


def _write_atomically(target: Path, data: bytes, name: str, overwrite: bool) -> None:
    folder = target.parent
    temporary: Path | None = None
    descriptor = -1
    try:
        for _ in range(100):
            candidate = folder / f".{target.name}.{secrets.token_hex(4)}.tmp"
            try:
                # 0o666 lets the umask decide the final permissions, as for any new file.
                descriptor = os.open(
                    candidate,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                    0o666,
                )
            except FileExistsError:
                continue
            temporary = candidate
            break
        else:
            raise ImageWriteError(f"{name}: cannot create a temporary file in its folder")
        with os.fdopen(descriptor, "wb") as stream:
            descriptor = -1  # the file object owns it now
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        if overwrite:
            os.replace(temporary, target)
        else:
            _move_without_replacing(temporary, target, name)
        temporary = None
        _sync_folder(folder)
    except ImageWriteError:
        raise
    except OSError as error:
        raise _write_error(name, error) from None
    finally:
        if descriptor != -1:
            os.close(descriptor)
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)


def _move_without_replacing(temporary: Path, target: Path, name: str) -> None:
    try:
        os.link(temporary, target)
    except FileExistsError:
        raise ImageWriteError(f"{name}: exists (use --overwrite to replace it)") from None
    except (AttributeError, NotImplementedError):
        _replace_if_absent(temporary, target, name)
        return
    except OSError as error:
        # EPERM also means "no hard links here" (FAT, some network and FUSE file systems);
        # EACCES is a real permission problem and is reported as such.
        if error.errno not in _NO_HARD_LINKS:
            raise
        _replace_if_absent(temporary, target, name)
        return
    os.unlink(temporary)


def _replace_if_absent(temporary: Path, target: Path, name: str) -> None:
    if target.exists() or target.is_symlink():
        raise ImageWriteError(f"{name}: exists (use --overwrite to replace it)")
    os.replace(temporary, target)


def _sync_folder(folder: Path) -> None:
    """Make the rename durable; best effort (not possible on every system)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
