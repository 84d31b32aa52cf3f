"""JPEG, BMP, WebP and GIF through Pillow, and the Pillow side of PNG and TIFF.

:func:`decode` reads every format Pillow knows (8-bit PNG and TIFFs tifffile cannot decode
included), converting palette, 1-bit, CMYK and YCbCr images to grey or RGB with alpha split
off; :func:`decode_pages` composites animated GIF and WebP frames as a viewer shows them,
keeping their durations. :func:`encode` writes JPEG (reusing a JPEG input's quantisation
tables and subsampling), BMP (32-bit RGBA written directly, as Pillow would drop alpha),
WebP (lossless unless the input was lossy or a quality is given) and GIF (exact palettes up
to 256 colours, else median cut without dithering).
"""

from __future__ import annotations

import contextlib
import io
import struct
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from tvdenoise.errors import ImageReadError
from tvdenoise.io.common import Decoded, first
from tvdenoise.io.images import FORMAT_TITLES
from tvdenoise.io.limits import check_size, pillow_limit, pillow_too_large
from tvdenoise.io.metadata import dpi_of, pillow_metadata, pillow_options


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


def webp_is_lossless(data: bytes) -> bool:
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


def decode(data: bytes, image_format: str, name: str, max_pixels: int | None) -> Decoded:
    from PIL import Image

    try:
        with pillow_limit(max_pixels):
            image: Image.Image = Image.open(io.BytesIO(data), formats=[image_format])
            check_size(name, (image.size[1], image.size[0]), max_pixels)
            image.load()
    except ImageReadError:
        raise
    except Image.DecompressionBombError as error:
        raise pillow_too_large(name, max_pixels, error) from None
    except Exception:
        raise ImageReadError(
            f"{name}: cannot decode {FORMAT_TITLES[image_format]} image (truncated or corrupt)"
        ) from None
    # A TIFF's "EXIF" in Pillow is its own tag directory (strip offsets, ...): not carried.
    metadata, orientation = pillow_metadata(image, carry_exif=image_format != "TIFF")
    if image_format == "JPEG":
        metadata.update(_jpeg_metadata(image))
    elif image_format == "WEBP":
        metadata["webp_lossless"] = webp_is_lossless(data)

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
            f"{name}: cannot decode {FORMAT_TITLES[image_format]} image "
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
            f"{name}: cannot decode {FORMAT_TITLES[image_format]} image "
            f"(unsupported pixel mode {mode})"
        )
    return np.ascontiguousarray(array), alpha, metadata, orientation


def decode_pages(
    data: bytes, image_format: str, name: str, max_pixels: int | None
) -> list[Decoded]:
    """Every frame of a GIF or WebP, composited as a viewer shows it."""
    from PIL import Image, ImageSequence

    try:
        with pillow_limit(max_pixels):
            image = Image.open(io.BytesIO(data), formats=[image_format])
            count = int(getattr(image, "n_frames", 1))
            if count == 1:
                return [decode(data, image_format, name, max_pixels)]
            check_size(name, (count, image.size[1], image.size[0]), max_pixels)
            metadata, orientation = pillow_metadata(image)
            durations: list[int] = []
            frames: list[np.ndarray] = []
            for frame in ImageSequence.Iterator(image):
                durations.append(int(frame.info.get("duration", 0) or 0))
                frames.append(np.array(frame.convert("RGBA")))
            loop = image.info.get("loop")
    except ImageReadError:
        raise
    except Image.DecompressionBombError as error:
        raise pillow_too_large(name, max_pixels, error) from None
    except Exception:
        raise ImageReadError(
            f"{name}: cannot decode {FORMAT_TITLES[image_format]} image (truncated or corrupt)"
        ) from None
    rgba = np.stack(frames)
    alpha = rgba[..., 3] if np.any(rgba[..., 3] != 255) else None
    grey = np.array_equal(rgba[..., 0], rgba[..., 1]) and np.array_equal(rgba[..., 1], rgba[..., 2])
    pixels = rgba[..., 0] if grey else rgba[..., :3]
    metadata["durations"] = durations
    if loop is not None:
        metadata["loop"] = int(loop)
    if image_format == "WEBP":
        metadata["webp_lossless"] = webp_is_lossless(data)
    return [
        (pixels[index], None if alpha is None else alpha[index], metadata, orientation)
        for index in range(count)
    ]


def save_with_pillow(array: np.ndarray, image_format: str, **options: Any) -> bytes:
    """Encode one array with Pillow in ``image_format``."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=image_format, **options)
    return buffer.getvalue()


def _encode_jpeg(
    pages: np.ndarray, alpha: np.ndarray | None, metadata: Mapping[str, Any], quality: int | None
) -> bytes:
    pixels, _ = first(pages, alpha)
    options = pillow_options(metadata)
    colour = pixels.ndim == 3
    subsampling = metadata.get("jpeg_subsampling")
    tables = metadata.get("jpeg_qtables")
    if colour and subsampling in (0, 1, 2):
        options["subsampling"] = subsampling
    if quality is None and tables and (len(tables) >= 2 or not colour):
        # The input's own tables: the output has the input's quality, whatever it was.
        options["qtables"] = [list(table) for table in tables][: 2 if colour else 1]
        return save_with_pillow(pixels, "JPEG", **options)
    quality = 95 if quality is None else quality
    if colour and "subsampling" not in options:
        options["subsampling"] = 0 if quality >= 90 else 2  # 4:4:4, else libjpeg's 4:2:0
    return save_with_pillow(pixels, "JPEG", quality=quality, **options)


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
    options = pillow_options(metadata)
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


def _encode_bmp(
    pages: np.ndarray, alpha: np.ndarray | None, metadata: Mapping[str, Any], quality: int | None
) -> bytes:
    pixels, alpha = first(pages, alpha)
    dpi = dpi_of(metadata)
    if alpha is None:
        return save_with_pillow(pixels, "BMP", **({"dpi": dpi} if dpi else {}))
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


_Encoder = Callable[[np.ndarray, "np.ndarray | None", Mapping[str, Any], "int | None"], bytes]
_ENCODERS: dict[str, _Encoder] = {
    "JPEG": _encode_jpeg,
    "WEBP": _encode_webp,
    "GIF": _encode_gif,
    "BMP": _encode_bmp,
}


def encode(
    image_format: str,
    pages: np.ndarray,
    alpha: np.ndarray | None,
    metadata: Mapping[str, Any],
    quality: int | None,
) -> bytes:
    """Encode 8-bit pages as JPEG, WebP, GIF or BMP (the single-image formats take page 0)."""
    return _ENCODERS[image_format](pages, alpha, metadata, quality)
