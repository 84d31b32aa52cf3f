"""TIFF on tifffile: every integer and float sample type, pages, alpha, dpi, ICC and text tags.

Compressions tifffile cannot decode without imagecodecs are read through Pillow where Pillow
keeps all the bits (8-bit images, single-channel images); otherwise the error says what to
install. Reduced-resolution pages (thumbnails, pyramid levels) are not images of a stack.

Outputs keep the input's compression when it is one of :data:`COMPRESSIONS` (read into
``metadata["tiff_compression"]``): an uncompressed scan comes back uncompressed, an LZW one
as LZW. Other inputs, and TIFFs in other compressions (JPEG, LZMA, CCITT, ...), are written
with deflate, lossless and read by every TIFF reader; setting ``metadata["tiff_compression"]``
chooses (the command line's ``--compression``). The predictor is not carried.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping
from typing import Any

import numpy as np

from tvdenoise.errors import ImageReadError
from tvdenoise.io import pillow_formats
from tvdenoise.io.common import Decoded, one_line, quieten, with_alpha
from tvdenoise.io.formats import TIFF_COMPRESSIONS
from tvdenoise.io.limits import check_size
from tvdenoise.io.metadata import dpi_of, exif_text_tags, tiff_text_exif

#: The compressions written, by the name the options use, as tifffile's compression argument
#: (deflate is tag value 8, Adobe's, which every reader knows).
COMPRESSIONS: dict[str, str | None] = {
    name: {"none": None, "deflate": "zlib"}.get(name, name) for name in TIFF_COMPRESSIONS
}
#: The compression an output gets when its input's is not kept.
DEFAULT_COMPRESSION = "deflate"
#: tifffile's names of the compressions read that are kept (both deflate tag values).
_KEPT = {
    "NONE": "none",
    "ADOBE_DEFLATE": "deflate",
    "DEFLATE": "deflate",
    "LZW": "lzw",
    "ZSTD": "zstd",
    "PACKBITS": "packbits",
}


class _TiffFallback(Exception):
    """tifffile cannot decode this TIFF; Pillow may (the message says why not)."""


def decode(data: bytes, image_format: str, name: str, max_pixels: int | None) -> Decoded:
    """Decode a single-page TIFF (tifffile; Pillow where tifffile lacks a codec)."""
    try:
        return _decode_tiff_with_tifffile(data, name, max_pixels, all_pages=False)[0]
    except _TiffFallback as refusal:
        reason, pillow_keeps_all_bits = refusal.args
        if pillow_keeps_all_bits:
            with contextlib.suppress(ImageReadError):
                return pillow_formats.decode(data, "TIFF", name, max_pixels)
        raise ImageReadError(f"{name}: {reason}") from None


def decode_pages(
    data: bytes, image_format: str, name: str, max_pixels: int | None
) -> list[Decoded]:
    """Decode every page of a TIFF, reduced-resolution pages left out."""
    try:
        return _decode_tiff_with_tifffile(data, name, max_pixels, all_pages=True)
    except _TiffFallback:
        # Only single-page files get here (see _decode_tiff_with_tifffile): Pillow may do.
        return [decode(data, image_format, name, max_pixels)]


def _decode_tiff_with_tifffile(
    data: bytes, name: str, max_pixels: int | None, *, all_pages: bool
) -> list[Decoded]:
    import tifffile

    quieten("tifffile")

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
        check_size(
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


def _decode_tiff_page(page: Any, name: str) -> Decoded:
    bits = int(page.bitspersample)
    samples = int(page.samplesperpixel)
    pillow_keeps_all_bits = bits <= 8 or samples == 1
    photometric = page.photometric.name if page.photometric is not None else "NONE"
    if photometric not in ("MINISBLACK", "MINISWHITE", "RGB", "PALETTE"):
        raise _TiffFallback(f"unsupported TIFF colour model {photometric}", pillow_keeps_all_bits)
    try:
        array = page.asarray()
    except Exception as error:
        message = one_line(error)
        if "imagecodecs" in message:
            compression = getattr(page.compression, "name", str(page.compression))
            reason = (
                f"cannot decode TIFF compression {compression} (install the 'imagecodecs' package)"
            )
        else:
            reason = "cannot decode TIFF image (truncated or corrupt)"
        raise _TiffFallback(reason, pillow_keeps_all_bits) from None
    metadata, orientation = _tiff_metadata(page)
    kept = _KEPT.get(getattr(page.compression, "name", ""))
    if kept is not None:
        metadata["tiff_compression"] = kept
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
        exif = tiff_text_exif(tags)
        if exif:
            metadata["exif"] = exif
    return metadata, orientation


def encode(
    image_format: str,
    pages: np.ndarray,
    alpha: np.ndarray | None,
    metadata: Mapping[str, Any],
    quality: int | None,
) -> bytes:
    """Encode every page into one TIFF, with dpi, ICC and text tags, compressed as
    ``metadata["tiff_compression"]`` says (one of :data:`COMPRESSIONS`; deflate without it)."""
    import tifffile

    compression = metadata.get("tiff_compression") or DEFAULT_COMPRESSION
    if compression not in COMPRESSIONS:
        raise ValueError(
            f"unknown TIFF compression {compression!r}; allowed: {', '.join(COMPRESSIONS)}"
        )

    options: dict[str, Any] = {}
    dpi = dpi_of(metadata)
    if dpi is not None:
        options.update(resolution=dpi, resolutionunit="INCH")
    if metadata.get("icc_profile"):
        options["iccprofile"] = bytes(metadata["icc_profile"])
    if alpha is not None:
        options["extrasamples"] = ("unassalpha",)
    if metadata.get("exif"):
        texts = exif_text_tags(bytes(metadata["exif"]))
        if 270 in texts:
            options["description"] = texts.pop(270)
        if 305 in texts:
            options["software"] = texts.pop(305)
        options["extratags"] = [(code, "s", 0, value, True) for code, value in texts.items()]
    buffer = io.BytesIO()
    with tifffile.TiffWriter(buffer) as writer:
        for index in range(pages.shape[0]):
            writer.write(
                with_alpha(pages[index], None if alpha is None else alpha[index]),
                photometric="rgb" if pages.ndim == 4 else "minisblack",
                planarconfig="contig",
                compression=COMPRESSIONS[compression],
                metadata=None,
                **options,
            )
    return buffer.getvalue()
