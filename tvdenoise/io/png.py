"""PNG: imagecodecs (libpng) for 16-bit colour and grey+alpha, which Pillow reduces to 8 bits;
8-bit PNG written here (zlib in parallel threads); Pillow decodes 8-bit PNG and 16-bit grey.

Written files carry the pHYs (dpi), iCCP and eXIf chunks Pillow would write. A PNG without
its end chunk is refused as truncated even where the decoder would accept it.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from tvdenoise.errors import ImageReadError
from tvdenoise.io import pillow_formats
from tvdenoise.io.common import Decoded, first, quieten, with_alpha
from tvdenoise.io.limits import check_size, pillow_limit
from tvdenoise.io.metadata import EXIF_PREFIX, dpi_of, pillow_metadata, pillow_options
from tvdenoise.native import usable_cores

PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the IEND chunk, always these 12 bytes


def needs_libpng(data: bytes) -> bool:
    """True for 16-bit PNG with alpha or colour, which Pillow would reduce to 8 bits."""
    if len(data) < 26 or data[12:16] != b"IHDR":
        return False
    bit_depth, colour_type = data[24], data[25]
    return bit_depth == 16 and colour_type in (2, 4, 6)


def decode(data: bytes, image_format: str, name: str, max_pixels: int | None) -> Decoded:
    """Decode a PNG: libpng for 16-bit colour and grey+alpha, Pillow for the rest."""
    if needs_libpng(data):
        decoded = _decode_png16(data, name, max_pixels)
    else:
        decoded = pillow_formats.decode(data, image_format, name, max_pixels)
    if PNG_END not in data[-4096:]:
        # Pillow decodes a PNG cut after its pixel data without a word; a file without its
        # end chunk is a broken download all the same.
        raise ImageReadError(f"{name}: cannot decode PNG image (truncated or corrupt: no end)")
    return decoded


def _decode_png16(data: bytes, name: str, max_pixels: int | None) -> Decoded:
    """Decode 16-bit grey+alpha, RGB and RGBA PNG with imagecodecs (libpng); metadata through
    Pillow."""
    import imagecodecs
    from PIL import Image

    width, height = struct.unpack(">II", data[16:24])
    check_size(name, (height, width), max_pixels)
    metadata: dict[str, Any] = {}
    orientation = 1
    try:
        # Opening only parses the chunks before the pixel data.
        with pillow_limit(None):
            opened = Image.open(io.BytesIO(data), formats=["PNG"])
        metadata, orientation = pillow_metadata(opened)
    except Exception:
        metadata, orientation = {}, 1
    # libpng warns through imagecodecs' logger (an interlaced file, for one); see quieten.
    quieten("imagecodecs")
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


def encode(
    image_format: str,
    pages: np.ndarray,
    alpha: np.ndarray | None,
    metadata: Mapping[str, Any],
    quality: int | None,
) -> bytes:
    """Encode page 0 as 8-bit (libpng), 16-bit grey (Pillow) or 16-bit colour/alpha PNG."""
    pixels, alpha = first(pages, alpha)
    if pixels.dtype == np.uint8:
        return _encode_png8(with_alpha(pixels, alpha), metadata)
    if pixels.ndim == 2 and alpha is None:
        # Pillow writes 16-bit grey (mode I;16) correctly.
        return pillow_formats.save_with_pillow(pixels, "PNG", **pillow_options(metadata))
    return _encode_png16(pixels, alpha, metadata)


#: zlib effort of 8-bit PNG output. On a denoised 12-megapixel colour photo libpng took 0.6 s
#: at level 2 against 2.2 s at level 6 (Pillow's default), for a file 18 % larger; the
#: parallel parts below took 0.25-0.30 s against libpng's 1.14 s at level 2 under load 2.5,
#: for 13.80 against 13.95 MB.
PNG_LEVEL = 2
#: Rows are compressed in parts of about this many bytes, in parallel threads.
PNG_PART_BYTES = 4 << 20
#: PNG colour type by the number of 8-bit samples per pixel.
_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}
_AVERAGE = 3  # the PNG filter type of every row
_ADLER_BASE = 65521


def _encode_png8(array: np.ndarray, metadata: Mapping[str, Any]) -> bytes:
    """8-bit grey, grey+alpha, RGB or RGBA PNG, with the pHYs, iCCP and eXIf chunks Pillow
    would write.

    Every row is filtered with the Average filter (on denoised photos it compresses better
    than libpng's per-row choice: 13.8 against 13.9 MB at 12 MP), and the rows are deflated at
    ``PNG_LEVEL`` in parts of ``PNG_PART_BYTES`` on every available core, as pigz does: each
    part but the last ends with a sync flush, so the parts joined are one deflate stream, and
    their Adler-32 sums combine into the zlib trailer.
    """
    pixels = np.ascontiguousarray(array)
    height, width = pixels.shape[:2]
    samples = 1 if pixels.ndim == 2 else pixels.shape[2]
    rows = pixels.reshape(height, width * samples)
    step = max(1, PNG_PART_BYTES // max(rows.shape[1] + 1, 1))
    parts = [(top, min(top + step, height)) for top in range(0, height, step)]

    def deflate(part: tuple[int, int]) -> tuple[bytes, int, int]:
        top, bottom = part
        raw = _average_filtered(rows, top, bottom, samples)
        compressor = zlib.compressobj(PNG_LEVEL, zlib.DEFLATED, -15)
        last = bottom == height
        data = compressor.compress(raw) + compressor.flush(
            zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH
        )
        return data, zlib.adler32(raw), len(raw)

    workers = min(len(parts), usable_cores())
    if workers > 1:
        from concurrent.futures import ThreadPoolExecutor

        # zlib and numpy release the GIL on large buffers: the parts deflate in parallel.
        with ThreadPoolExecutor(max_workers=workers) as pool:
            deflated = list(pool.map(deflate, parts))
    else:
        deflated = [deflate(part) for part in parts]
    checksum = 1
    for _, adler, length in deflated:
        checksum = _adler32_combine(checksum, adler, length)
    stream = b"\x78\x5e" + b"".join(data for data, _, _ in deflated)
    stream += struct.pack(">I", checksum)
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOUR_TYPES[samples], 0, 0, 0)
    chunks = [b"\x89PNG\r\n\x1a\n", _png_chunk(b"IHDR", header)]
    chunks += [
        _png_chunk(b"IDAT", stream[start : start + (1 << 20)])
        for start in range(0, len(stream), 1 << 20)
    ]
    chunks.append(_png_chunk(b"IEND", b""))
    return _with_png_metadata(b"".join(chunks), metadata)


def _average_filtered(rows: np.ndarray, top: int, bottom: int, samples: int) -> bytes:
    """Rows ``top`` to ``bottom`` of the samples ``rows`` (H, W * samples) as PNG scanlines
    with the Average filter: each byte minus the floor of the mean of the byte one pixel to
    its left and the byte above (0 outside the image), modulo 256, after a filter-type byte."""
    block = rows[top:bottom]
    above = np.zeros_like(block)
    above[1:] = block[:-1]
    if top > 0:
        above[0] = rows[top - 1]
    left = np.zeros_like(block)
    left[:, samples:] = block[:, :-samples]
    # floor((a + b) / 2) in 8 bits: a/2 + b/2 + (the bit both odd values lose).
    predicted = (left >> 1) + (above >> 1) + (left & above & 1)
    out = np.empty((block.shape[0], block.shape[1] + 1), dtype=np.uint8)
    out[:, 0] = _AVERAGE
    np.subtract(block, predicted, out=out[:, 1:])
    return out.tobytes()


def _adler32_combine(first: int, second: int, length: int) -> int:
    """The Adler-32 of two byte strings joined, from theirs and the second's length (zlib's
    adler32_combine)."""
    remainder = length % _ADLER_BASE
    low = first & 0xFFFF
    high = (remainder * low) % _ADLER_BASE
    low = (low + (second & 0xFFFF) + _ADLER_BASE - 1) % _ADLER_BASE
    high = (high + (first >> 16) + (second >> 16) + _ADLER_BASE - remainder) % _ADLER_BASE
    return low | (high << 16)


def _png_chunk(chunk_type: bytes, payload: bytes) -> bytes:
    body = chunk_type + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


def _with_png_metadata(encoded: bytes, metadata: Mapping[str, Any]) -> bytes:
    """A PNG from libpng with the dpi (pHYs), ICC profile (iCCP) and EXIF (eXIf) chunks of
    ``metadata`` added after IHDR."""
    extra = b""
    dpi = dpi_of(metadata)
    if dpi is not None:
        # Pixels per metre, unit 1 (metre).
        density = struct.pack(">IIB", round(dpi[0] / 0.0254), round(dpi[1] / 0.0254), 1)
        extra += _png_chunk(b"pHYs", density)
    if metadata.get("icc_profile"):
        profile = zlib.compress(bytes(metadata["icc_profile"]))
        extra += _png_chunk(b"iCCP", b"ICC Profile\x00\x00" + profile)
    if metadata.get("exif"):
        exif = bytes(metadata["exif"])
        extra += _png_chunk(b"eXIf", exif.removeprefix(EXIF_PREFIX))
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

    quieten("imagecodecs")
    # zlib level 1 and the SUB filter on every row (OpenCV's fast setting without its RLE
    # strategy): on a noisy 4 MP 16-bit RGB image 0.5 s against 0.8 s with libpng's defaults,
    # for a file 1.5 % larger (20.1 against 19.8 MiB; pypng's was 22.1). Measured.
    array = np.ascontiguousarray(with_alpha(pixels, alpha))
    codec = imagecodecs.PNG
    encoded = bytes(
        imagecodecs.png_encode(array, level=codec.COMPRESSION.SPEED, filter=codec.FILTER.SUB)
    )
    return _with_png_metadata(encoded, metadata)
