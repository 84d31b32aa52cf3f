"""FITS on astropy (the optional extra ``tvdenoise[astro]``): 2-D frames and 3-D cubes.

The image is the first HDU that holds data: the primary array, else the first image
extension (tile-compressed images included). A 2-D array is one image; a 3-D array of
``NAXIS3`` planes is a stack of that many frames (a cube: read it with ``load_stack``, or
``--stack frames|volume``). Rows are kept in the file's order (FITS counts rows from the
bottom, so a FITS frame converted to PNG shows upside down against a FITS viewer; FITS to
FITS round trips are exact).

Values:

- ``float32`` and ``float64`` are kept as they are, NaN included: NaN is FITS's mark of a
  pixel without data (the format row says ``nan_kept``), and the denoiser masks NaN pixels
  out of the data term and writes them back as NaN.
- Integers are read through ``BZERO``/``BSCALE``: the unsigned conventions (``int16`` with
  ``BZERO = 32768`` and so on) give ``uint16``, ``uint32``, ``uint64`` and ``uint8`` for
  ``int8``; other scalings give the physical values as floats (``float32`` for 8- and 16-bit
  storage, else ``float64``, as astropy does), and the writer scales them back to the stored
  integer type with the same ``BSCALE``/``BZERO`` when the output is made ``like`` the input
  (``metadata["fits_scale"]``). ``BLANK`` pixels of scaled integers become NaN.
- The header is carried (``metadata["fits_header"]``, its text) and written back with the
  structural keywords set anew, plus one ``HISTORY`` card per line of
  ``metadata["history"]`` (what tvdenoise did).

Colour: an RGB image is written as a cube of three planes with ``CTYPE3 = 'RGB'`` (as
astronomy tools store colour composites) and read back as one RGB image; stacks of RGB
images are refused. Alpha is dropped.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from tvdenoise.errors import ImageReadError, ImageWriteError
from tvdenoise.io.common import Decoded, Stacked, require
from tvdenoise.io.limits import check_size

__all__ = ["decode", "decode_pages", "encode"]

#: Header keywords astropy writes from the data; a carried header must not repeat them.
_STRUCTURAL = ("SIMPLE", "XTENSION", "BITPIX", "EXTEND", "PCOUNT", "GCOUNT", "GROUPS")
_SCALING = ("BSCALE", "BZERO", "BLANK")
#: The unsigned conventions: (stored type, BZERO) -> the type the values fit.
_UNSIGNED = {
    ("int16", 32768): np.uint16,
    ("int32", 2**31): np.uint32,
    ("int64", 2**63): np.uint64,
    ("uint8", -128): np.int8,
}
_BITPIX = {8: "uint8", 16: "int16", 32: "int32", 64: "int64", -32: "float32", -64: "float64"}


def _astropy(name: str, error: type[Exception]) -> Any:
    return require("astropy.io.fits", "astro", f"{name}: reading and writing FITS", error)


def _open(
    data: bytes, name: str, max_pixels: int | None
) -> tuple[np.ndarray, dict[str, Any], bool]:
    """The data array of the first HDU that has one (scaled; an RGB cube made (H, W, 3)),
    its metadata, and whether it is one RGB image."""
    fits = _astropy(name, ImageReadError)
    try:
        with warnings.catch_warnings():
            # Non-standard keywords make astropy warn; the library does not print.
            warnings.simplefilter("ignore")
            hdus = fits.open(io.BytesIO(data), memmap=False, lazy_load_hdus=False)
            hdu = next((h for h in hdus if h.is_image and h.header.get("NAXIS", 0) > 0), None)
            if hdu is None:
                raise ImageReadError(f"{name}: FITS file holds no image data")
            header = hdu.header
            axes = [int(header[f"NAXIS{i}"]) for i in range(int(header["NAXIS"]), 0, -1)]
            shape: tuple[int, ...] = tuple(extent for extent in axes if extent != 1) or (1, 1)
            if len(shape) not in (2, 3) or 0 in shape:
                raise ImageReadError(
                    f"{name}: FITS array of shape {tuple(axes)} is not a frame (2-D) or a cube "
                    "(3-D)"
                )
            check_size(name, shape, max_pixels)
            raw_type = _BITPIX.get(int(header["BITPIX"]))
            if not _compressed(hdu):
                _check_complete(hdu, axes, int(header["BITPIX"]), len(data), name)
            bscale = float(header.get("BSCALE", 1.0))
            bzero = float(header.get("BZERO", 0.0))
            array = np.asarray(hdu.data)
    except ImageReadError:
        raise
    except MemoryError:
        raise
    except Exception:
        raise ImageReadError(f"{name}: cannot decode FITS image (truncated or corrupt)") from None
    array = array.reshape(shape)
    colour = len(shape) == 3 and shape[0] == 3 and str(header.get("CTYPE3", "")).upper() == "RGB"
    if colour:
        array = np.moveaxis(array, 0, -1)
    if array.dtype.byteorder not in ("=", "|"):
        array = array.astype(array.dtype.newbyteorder("="))
    metadata: dict[str, Any] = {"fits_header": _carried_header(header)}
    if raw_type in ("uint8", "int16", "int32", "int64") and array.dtype.kind == "f":
        metadata["fits_scale"] = (raw_type, bscale, bzero)
    return np.ascontiguousarray(array), metadata, colour


def _compressed(hdu: Any) -> bool:
    return type(hdu).__name__ == "CompImageHDU"


def _check_complete(hdu: Any, axes: list[int], bitpix: int, size: int, name: str) -> None:
    """astropy pads a truncated file's data with zeros (with a warning): refuse it instead."""
    needed = abs(bitpix) // 8
    for extent in axes:
        needed *= extent
    start = int(hdu.fileinfo()["datLoc"])
    if start + needed > size:
        raise ImageReadError(
            f"{name}: cannot decode FITS image (truncated: {size:,} bytes, the data needs "
            f"{start + needed:,})"
        )


def _carried_header(header: Any) -> str:
    """The header's text without the keywords that describe the storage."""
    carried = header.copy()
    for key in (*_STRUCTURAL, *_SCALING):
        carried.remove(key, ignore_missing=True, remove_all=True)
    for key in list(carried.keys()):
        if key.startswith("NAXIS") or key in ("ZIMAGE", "CHECKSUM", "DATASUM"):
            carried.remove(key, ignore_missing=True, remove_all=True)
    return str(carried.tostring())


def decode(data: bytes, image_format: str, name: str, max_pixels: int | None) -> Decoded:
    """Decode a FITS frame; a cube of several planes is refused (read it as a stack)."""
    array, metadata, colour = _open(data, name, max_pixels)
    if array.ndim == 3 and not colour:
        raise ImageReadError(
            f"{name}: FITS cube ({array.shape[0]} planes); read it as a stack "
            "(load_stack, or --stack frames|volume on the command line)"
        )
    return array, None, metadata, 1


def decode_pages(data: bytes, image_format: str, name: str, max_pixels: int | None) -> Stacked:
    """Decode a FITS frame (one page) or cube (one page per plane)."""
    array, metadata, colour = _open(data, name, max_pixels)
    return Stacked(array[None] if array.ndim == 2 or colour else array, None, metadata)


def encode(
    image_format: str,
    pages: np.ndarray,
    alpha: np.ndarray | None,
    metadata: Mapping[str, Any],
    quality: int | None,
) -> bytes:
    """Encode pages as a FITS frame (one page) or cube, with the carried header."""
    fits = _astropy("<output>", ImageWriteError)
    if pages.ndim == 4 and pages.shape[0] > 1:
        raise ValueError("FITS holds grey cubes, not stacks of RGB images (use .tif or .npy)")
    array = pages[0] if pages.shape[0] == 1 else pages
    colour = array.ndim == 3 and pages.ndim == 4
    if colour:
        array = np.moveaxis(array, -1, 0)
    if array.dtype == np.float16:
        array = array.astype(np.float32)
    header = fits.Header()
    text = metadata.get("fits_header")
    if isinstance(text, str) and text:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            header = fits.Header.fromstring(text)
    if colour:
        header["CTYPE3"] = "RGB"
    elif "CTYPE3" in header and str(header["CTYPE3"]).upper() == "RGB":
        del header["CTYPE3"]
    for line in metadata.get("history", ()) or ():
        header.add_history(str(line))
    hdu = fits.PrimaryHDU(data=np.ascontiguousarray(array), header=header)
    scale = metadata.get("fits_scale")
    if scale is not None and array.dtype.kind == "f":
        raw_type, bscale, bzero = scale
        finite = array[np.isfinite(array)]
        low, high = np.iinfo(raw_type).min, np.iinfo(raw_type).max
        stored = (finite - bzero) / bscale if finite.size else finite
        # The stored integers must hold every value (NaN has no integer: a cube with NaN
        # and a scaling is written as floats, which keeps the NaN).
        if finite.size == array.size and stored.min() >= low and stored.max() <= high:
            hdu.scale(raw_type, bscale=bscale, bzero=bzero)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hdu.writeto(buffer, output_verify="silentfix")
    return buffer.getvalue()
