"""What every codec module of :mod:`tvdenoise.io` shares: the shape of a decoded page, the
codec interface the format table's ``codec`` column names, and small helpers.

A codec module (:mod:`~tvdenoise.io.png`, :mod:`~tvdenoise.io.tiff`,
:mod:`~tvdenoise.io.pillow_formats`, :mod:`~tvdenoise.io.npy`) defines, for the formats whose
row names it:

- ``decode(data, image_format, name, max_pixels) -> Decoded``: one image;
- ``decode_pages(data, image_format, name, max_pixels) -> list[Decoded] | Stacked``: every
  page, for formats whose row says ``multi_page``;
- ``encode(image_format, pages, alpha, metadata, quality) -> bytes``: pages
  ``(P, H, W[, 3])`` already in a dtype the format stores (:mod:`tvdenoise.io.write` converts).

Decoders raise :class:`~tvdenoise.errors.ImageReadError` with a one-line message starting
with ``name``; encoders may raise anything (the writer turns it into one line).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import numpy as np

from tvdenoise.io import formats

__all__ = [
    "Codec",
    "Decoded",
    "Stacked",
    "check_extra",
    "codec_for",
    "first",
    "one_line",
    "quieten",
    "require",
    "with_alpha",
]

#: One decoded page: pixels ``(H, W[, 3])`` as stored (not yet upright), alpha ``(H, W)`` or
#: None, the metadata to carry, and the EXIF/TIFF orientation (1 to 8) still to apply.
Decoded = tuple[np.ndarray, "np.ndarray | None", dict[str, Any], int]


@dataclass
class Stacked:
    """Pages a decoder has already stacked and made upright (``.npy`` arrays): pixels
    ``(P, H, W[, 3])``, alpha ``(P, H, W)`` or None."""

    pixels: np.ndarray
    alpha: np.ndarray | None
    metadata: dict[str, Any] = field(default_factory=dict)


class Codec(Protocol):
    """The functions of a codec module (see the module documentation)."""

    def decode(
        self, data: bytes, image_format: str, name: str, max_pixels: int | None
    ) -> Decoded: ...

    def encode(
        self,
        image_format: str,
        pages: np.ndarray,
        alpha: np.ndarray | None,
        metadata: Mapping[str, Any],
        quality: int | None,
    ) -> bytes: ...


class PageCodec(Codec, Protocol):
    """A codec of formats that hold several pages."""

    def decode_pages(
        self, data: bytes, image_format: str, name: str, max_pixels: int | None
    ) -> list[Decoded] | Stacked: ...


def codec_for(image_format: str) -> PageCodec:
    """The codec module of ``ImageFile.format`` ``image_format``, as its row names it
    (imported on first use, so reading PNG never imports tifffile's reader)."""
    module = importlib.import_module(formats.by_name(image_format).codec_module)
    return cast(PageCodec, module)


def check_extra(image_format: str, name: str, error: type[Exception]) -> None:
    """Raise ``error`` (one line starting with ``name``) when the optional library the
    format's codec needs is not installed."""
    spec = formats.by_name(image_format)
    if spec.requires is not None and spec.extra is not None:
        require(spec.requires, spec.extra, f"{name}: reading and writing {spec.title}", error)


def require(module: str, extra: str, what: str, error: type[Exception]) -> Any:
    """Import an optional codec library, or raise ``error`` with one line naming the extra
    that installs it: ``x.fits: reading and writing FITS needs astropy (pip install
    'tvdenoise[astro]')``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise error(f"{what} needs {package} (pip install 'tvdenoise[{extra}]')") from None


def one_line(text: object) -> str:
    """``text`` with its whitespace runs (newlines included) made single spaces."""
    return " ".join(str(text).split())


def quieten(library: str) -> None:
    """Keep a library's log warnings (tifffile's about damaged files, libpng's through
    imagecodecs) off stderr unless logging is set up.

    Library code does not print; damage is reported by the error raised instead. A
    NullHandler only stops Python's last-resort output: records still propagate to handlers
    an application configures.
    """
    logger = logging.getLogger(library)
    if not any(isinstance(handler, logging.NullHandler) for handler in logger.handlers):
        logger.addHandler(logging.NullHandler())


def with_alpha(pixels: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """``pixels`` with ``alpha`` appended as the last channel (grey becomes ``(..., 2)``)."""
    if alpha is None:
        return pixels
    if pixels.ndim == alpha.ndim:  # grey: (H, W) or pages (P, H, W)
        return np.stack([pixels, alpha], axis=-1)
    return np.concatenate([pixels, alpha[..., None]], axis=-1)


def first(pages: np.ndarray, alpha: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The first page of ``pages`` and of ``alpha`` (single-image formats write only it)."""
    return pages[0], None if alpha is None else alpha[0]
