"""Writing image files: :func:`save_image`, :func:`save_stack` and their in-memory forms.

This module validates what is to be written, takes dtype, alpha and metadata from the image
it was made from (``like``), converts pixels to what the format stores, has the row's codec
module encode them (retrying without the carried metadata if the encoder refuses it) and
writes the file atomically (:mod:`tvdenoise.io.atomic`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tvdenoise.errors import ImageWriteError, InvalidParameterError
from tvdenoise.io import formats
from tvdenoise.io.atomic import check_target as _check_target
from tvdenoise.io.atomic import write_atomically as _write_atomically
from tvdenoise.io.common import check_extra, codec_for, one_line
from tvdenoise.io.images import (
    FORMAT_TITLES,
    ImageFile,
    ImageStack,
    normalise_format,
    output_format_for,
)
from tvdenoise.io.metadata import carried, layout_only
from tvdenoise.values import convert_dtype as _convert_dtype


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
    image_format = normalise_format(format, name)
    check_quality(quality)
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
    image_format = normalise_format(format, name)
    check_quality(quality)
    pages, alpha, metadata = _stack_parts(stack, name)
    return _encode_pages(pages, alpha, image_format, metadata, quality, name)


def check_quality(quality: int | None) -> None:
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
            f"{name}: {FORMAT_TITLES[image_format]} cannot store {dtype} pixels "
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
    title = FORMAT_TITLES[image_format]
    if pages.shape[0] > 1 and image_format not in _MULTI_PAGE_FORMATS:
        raise ImageWriteError(
            f"{name}: {title} holds one image, not {pages.shape[0]} pages "
            "(use .tif, .gif, .webp or .npy for stacks)"
        )
    if formats.by_name(image_format).alpha == "dropped":
        alpha = None
    pages, alpha = _fit_dtype(pages, alpha, image_format, name)
    check_extra(image_format, name, ImageWriteError)
    # The table's row names the codec module that encodes the format.
    codec = codec_for(image_format)
    try:
        return codec.encode(image_format, pages, alpha, metadata, quality)
    except Exception as error:
        if not carried(metadata):
            raise ImageWriteError(
                f"{name}: cannot encode {title} image ({one_line(error)})"
            ) from None
    # Metadata is carried on a best-effort basis: a block the encoder rejects is left out.
    try:
        return codec.encode(image_format, pages, alpha, layout_only(metadata), quality)
    except Exception as error:
        raise ImageWriteError(f"{name}: cannot encode {title} image ({one_line(error)})") from None


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
    check_quality(quality)

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
    check_quality(quality)

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
        return normalise_format(format, name)
    if target.suffix == "" and like is not None:
        return normalise_format(like.format, name)
    return output_format_for(name)
