"""Reading image files: :func:`load_image`, :func:`load_stack` and their in-memory forms.

The format is recognised from the content (the table's magic numbers), the row's codec
module decodes it (:func:`tvdenoise.io.common.codec_for`), and this module makes the pages
upright, checks their values and names what a file that is no image holds instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tvdenoise.errors import ImageReadError
from tvdenoise.io import formats
from tvdenoise.io.common import Decoded, Stacked, codec_for, one_line
from tvdenoise.io.images import (
    SUPPORTED_EXTENSIONS,
    SUPPORTED_FORMATS,
    ImageFile,
    ImageStack,
    unsupported_extension,
)
from tvdenoise.io.limits import DEFAULT_MAX_PIXELS, check_finite, check_max_pixels
from tvdenoise.io.metadata import orient

# Magic numbers of formats users are likely to try, to name them in the error message.
_OTHER_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"8BPS", "PSD"),
    (b"%PDF", "PDF"),
    (b"PK\x03\x04", "ZIP (an .npz archive?)"),
)


def _sniff(data: bytes) -> str | None:
    """Name the format of encoded image bytes from their magic number, or None."""
    spec = formats.sniff(data)
    return None if spec is None else spec.name


def load_image(
    path: str | os.PathLike[str],
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    allow_nan: bool = False,
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
    allow_nan : bool, optional
        Accept NaN in float images (pixels without data, to be masked out of the denoiser's
        data term). FITS always accepts NaN, its blank value; the other formats refuse it
        by default. Infinite values are always refused.

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
    image = decode_image(data, name=name, max_pixels=max_pixels, allow_nan=allow_nan)
    _release(data)
    image.path = Path(name)
    return image


def load_stack(
    path: str | os.PathLike[str],
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    allow_nan: bool = False,
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
    allow_nan : bool, optional
        As for :func:`load_image`.

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
    stack = decode_stack(data, name=name, max_pixels=max_pixels, allow_nan=allow_nan)
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
        reason = error.strerror or one_line(error)
        raise ImageReadError(f"{name}: cannot read ({reason})") from None


def _identify(data: bytes, name: str, max_pixels: int | None) -> str:
    check_max_pixels(max_pixels)
    if not data:
        raise ImageReadError(f"{name}: empty file (0 bytes), not an image")
    image_format = _sniff(data)
    if image_format is None:
        raise ImageReadError(f"{name}: {_unknown_content_reason(data, name)}")
    return image_format


def decode_image(
    data: bytes,
    name: str = "<stdin>",
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    allow_nan: bool = False,
) -> ImageFile:
    """Decode an image from bytes, as :func:`load_image` does from a file.

    Parameters
    ----------
    data : bytes
        The encoded image, for example read from standard input.
    name : str, optional
        What to call the image in error messages; its extension, if any, is only used to
        explain a refusal.
    max_pixels, allow_nan : optional
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
    >>> from tvdenoise.io.write import encode_image
    >>> encoded = encode_image(np.zeros((2, 3), dtype=np.uint8), "PNG")
    >>> image = decode_image(encoded)
    >>> image.format, image.pixels.shape, image.pixels.dtype
    ('PNG', (2, 3), dtype('uint8'))
    """
    data = bytes(data)
    image_format = _identify(data, name, max_pixels)
    decoded = codec_for(image_format).decode(data, image_format, name, max_pixels)
    pixels, alpha = _upright(decoded)
    check_finite(name, pixels, alpha, nan=allow_nan or formats.by_name(image_format).nan_kept)
    return ImageFile(pixels=pixels, alpha=alpha, format=image_format, metadata=decoded[2])


def decode_stack(
    data: bytes,
    name: str = "<stdin>",
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    allow_nan: bool = False,
) -> ImageStack:
    """Decode every page of an image from bytes, as :func:`load_stack` does from a file.

    Parameters
    ----------
    data : bytes
        The encoded file.
    name : str, optional
        What to call it in error messages.
    max_pixels, allow_nan : optional
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
    >>> from tvdenoise.io.write import encode_stack
    >>> pages = np.arange(24, dtype=np.uint16).reshape(2, 3, 4)
    >>> stack = decode_stack(encode_stack(pages, "TIFF"))
    >>> stack.pages, stack.pixels.dtype, bool((stack.pixels == pages).all())
    (2, dtype('uint16'), True)
    """
    data = bytes(data)
    image_format = _identify(data, name, max_pixels)
    if not formats.by_name(image_format).multi_page:
        single = decode_image(data, name, max_pixels=max_pixels, allow_nan=allow_nan)
        return ImageStack(
            single.pixels[None],
            None if single.alpha is None else single.alpha[None],
            image_format,
            metadata=single.metadata,
        )
    pages = codec_for(image_format).decode_pages(data, image_format, name, max_pixels)
    nan = allow_nan or formats.by_name(image_format).nan_kept
    if isinstance(pages, Stacked):
        check_finite(name, pages.pixels, pages.alpha, nan=nan)
        return ImageStack(pages.pixels, pages.alpha, image_format, metadata=pages.metadata)
    return _stack_pages(pages, image_format, name, nan)


def _upright(decoded: Decoded) -> tuple[np.ndarray, np.ndarray | None]:
    pixels, alpha, _, orientation = decoded
    pixels = orient(pixels, orientation)
    if alpha is not None:
        alpha = orient(alpha, orientation)
    return pixels, alpha


def _stack_pages(pages: list[Decoded], image_format: str, name: str, nan: bool) -> ImageStack:
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
    check_finite(name, pixels, alpha, nan=nan)
    return ImageStack(pixels, alpha, image_format, metadata=pages[0][2])


def _describe_page(pixels: np.ndarray) -> str:
    channels = "grey" if pixels.ndim == 2 else f"{pixels.shape[2]} channels"
    return f"{pixels.shape[1]}x{pixels.shape[0]} {channels} {pixels.dtype}"


def _unknown_content_reason(data: bytes, name: str) -> str:
    for signature, format_name in _OTHER_SIGNATURES:
        if data.startswith(signature):
            return f"unsupported format {format_name} (supported: {SUPPORTED_FORMATS})"
    suffix = Path(name).suffix.lower()
    if suffix and suffix not in SUPPORTED_EXTENSIONS and not name.startswith("<"):
        return unsupported_extension(suffix)
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
