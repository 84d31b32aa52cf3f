"""The image formats tvdenoise reads and writes: one row each (no numpy, no codecs imported).

Everything that lists formats reads :data:`FORMATS`: the readers' and writers' dispatch in
:mod:`tvdenoise.io.read` and :mod:`tvdenoise.io.write` (a row's ``codec`` names the module of
this package that decodes and encodes it), the extensions :mod:`tvdenoise.planning` collects
and converts to, the values ``--format`` and the ``format`` config key accept
(:mod:`tvdenoise.config`) and the ``--format`` help text. A new format is one more row here
plus its codec module.

Examples
--------
>>> by_extension(".TIF").name, by_option("jpg").extensions[0]
('TIFF', '.jpg')
>>> OPTIONS
('png', 'jpeg', 'tiff', 'bmp', 'webp', 'gif', 'npy', 'fits', 'mp4', 'mkv', 'webm')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "EXTENSIONS",
    "FORMATS",
    "OPTIONS",
    "OPTION_ALIASES",
    "TIFF_COMPRESSIONS",
    "FormatSpec",
    "by_extension",
    "by_name",
    "by_option",
    "option_list",
    "sniff",
]


@dataclass(frozen=True)
class FormatSpec:
    """One image format.

    Attributes
    ----------
    name : str
        ``ImageFile.format`` of its files: ``"PNG"``, ``"JPEG"``, ...
    title : str
        How messages spell it (``"WebP"``).
    option : str
        Its ``--format`` value and config value (``"jpeg"``).
    extensions : tuple of str
        File name extensions, lower case with the dot; the first is the one conversions use.
    aliases : tuple of str
        Other names ``--format`` accepts (``"jpg"``).
    signature : callable
        True for encoded bytes of this format (the magic number).
    any_dtype : bool
        Whether it stores every integer and float sample type (else 8 bits; PNG also 16).
    multi_page : bool
        Whether one file holds a stack (pages, frames, a volume).
    alpha : str
        What happens to an alpha channel.
    reader, writer : str
        The library that decodes and encodes it, in words.
    nan_kept : bool
        Whether NaN is a value of the format (FITS's blank pixels): read, masked out of the
        data term, written back; other formats refuse NaN unless asked to mask it.
    extra, requires : str or None
        The optional dependency set (``pip install 'tvdenoise[<extra>]'``) its codec needs,
        and the module whose import tells whether it is installed.
    codec : str
        The module of :mod:`tvdenoise.io` that decodes and encodes it (``"png"`` for
        :mod:`tvdenoise.io.png`): it defines ``decode`` and ``encode``, and ``decode_pages``
        when ``multi_page`` (see :mod:`tvdenoise.io.common`).
    """

    name: str
    title: str
    option: str
    extensions: tuple[str, ...]
    aliases: tuple[str, ...]
    signature: Callable[[bytes], bool]
    any_dtype: bool
    multi_page: bool
    alpha: str
    reader: str
    writer: str
    codec: str
    nan_kept: bool = False
    extra: str | None = None
    requires: str | None = None

    @property
    def codec_module(self) -> str:
        """The full name of the codec module: ``"tvdenoise.io.png"``."""
        return f"{__package__}.{self.codec}"


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NPY_SIGNATURE = b"\x93NUMPY"
FITS_SIGNATURE = b"SIMPLE  ="
EBML_SIGNATURE = b"\x1a\x45\xdf\xa3"  # Matroska and WebM

#: The formats, in the order ``--format`` lists them.
FORMATS: tuple[FormatSpec, ...] = (
    FormatSpec(
        "PNG", "PNG", "png", (".png",), (),
        lambda data: data.startswith(PNG_SIGNATURE),
        any_dtype=False, multi_page=False, alpha="kept",
        reader="Pillow; imagecodecs (libpng) for 16-bit colour or grey+alpha",
        writer="Pillow; imagecodecs (libpng) for 16-bit colour or grey+alpha",
        codec="png",
    ),
    FormatSpec(
        "JPEG", "JPEG", "jpeg", (".jpg", ".jpeg"), ("jpg",),
        lambda data: data.startswith(b"\xff\xd8\xff"),
        any_dtype=False, multi_page=False, alpha="dropped",
        reader="Pillow", writer="Pillow",
        codec="pillow_formats",
    ),
    FormatSpec(
        "TIFF", "TIFF", "tiff", (".tif", ".tiff"), ("tif",),
        lambda data: data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"),
        any_dtype=True, multi_page=True, alpha="kept",
        reader="tifffile (Pillow for compressions it lacks a codec for)", writer="tifffile",
        codec="tiff",
    ),
    FormatSpec(
        "BMP", "BMP", "bmp", (".bmp",), (),
        lambda data: data.startswith(b"BM"),
        any_dtype=False, multi_page=False, alpha="kept (grey -> RGBA)",
        reader="Pillow", writer="Pillow (32-bit RGBA written directly)",
        codec="pillow_formats",
    ),
    FormatSpec(
        "WEBP", "WebP", "webp", (".webp",), (),
        lambda data: data[:4] == b"RIFF" and data[8:12] == b"WEBP",
        any_dtype=False, multi_page=True, alpha="kept (grey -> RGB)",
        reader="Pillow", writer="Pillow",
        codec="pillow_formats",
    ),
    FormatSpec(
        "GIF", "GIF", "gif", (".gif",), (),
        lambda data: data[:6] in (b"GIF87a", b"GIF89a"),
        any_dtype=False, multi_page=True, alpha="1-bit (< 128 = 0)",
        reader="Pillow", writer="Pillow",
        codec="pillow_formats",
    ),
    FormatSpec(
        "NPY", "NPY", "npy", (".npy",), (),
        lambda data: data.startswith(NPY_SIGNATURE),
        any_dtype=True, multi_page=True, alpha="kept (last channel)",
        reader="numpy (allow_pickle=False)", writer="numpy",
        codec="npy",
    ),
    FormatSpec(
        "FITS", "FITS", "fits", (".fits", ".fit", ".fts"), ("fit",),
        lambda data: data.startswith(FITS_SIGNATURE),
        any_dtype=True, multi_page=True, alpha="dropped",
        reader="astropy", writer="astropy",
        codec="fits", nan_kept=True, extra="astro", requires="astropy.io.fits",
    ),
    FormatSpec(
        "MP4", "MP4", "mp4", (".mp4", ".m4v", ".mov"), ("mov", "m4v"),
        lambda data: data[4:8] == b"ftyp",
        any_dtype=False, multi_page=True, alpha="dropped",
        reader="PyAV (FFmpeg)", writer="PyAV: H.264 (libx264), audio copied",
        codec="video", extra="video", requires="av",
    ),
    FormatSpec(
        "MKV", "Matroska", "mkv", (".mkv",), (),
        lambda data: data.startswith(EBML_SIGNATURE) and b"webm" not in data[:64],
        any_dtype=False, multi_page=True, alpha="dropped",
        reader="PyAV (FFmpeg)", writer="PyAV: H.264 (libx264), audio copied",
        codec="video", extra="video", requires="av",
    ),
    FormatSpec(
        "WEBM", "WebM", "webm", (".webm",), (),
        lambda data: data.startswith(EBML_SIGNATURE) and b"webm" in data[:64],
        any_dtype=False, multi_page=True, alpha="dropped",
        reader="PyAV (FFmpeg)", writer="PyAV: VP9 (libvpx-vp9), audio copied",
        codec="video", extra="video", requires="av",
    ),
)  # fmt: skip

#: Every extension (lower case, with the dot) and its format.
EXTENSIONS: dict[str, FormatSpec] = {
    extension: spec for spec in FORMATS for extension in spec.extensions
}
#: The ``--format`` values, in table order.
OPTIONS: tuple[str, ...] = tuple(spec.option for spec in FORMATS)
#: Other ``--format`` names and the value each stands for.
OPTION_ALIASES: dict[str, str] = {alias: spec.option for spec in FORMATS for alias in spec.aliases}
#: The compressions TIFF outputs are written with (:mod:`tvdenoise.io.tiff` maps them to
#: tifffile's; the ``compression`` setting takes them, or ``keep``).
TIFF_COMPRESSIONS: tuple[str, ...] = ("none", "deflate", "lzw", "zstd", "packbits")

_BY_NAME = {spec.name: spec for spec in FORMATS}
_BY_OPTION = {key: spec for spec in FORMATS for key in (spec.option, *spec.aliases)}


def by_name(name: str) -> FormatSpec:
    """The row of ``ImageFile.format`` ``name`` (``"PNG"``); KeyError if there is none."""
    return _BY_NAME[name]


def by_extension(extension: str) -> FormatSpec | None:
    """The row of a file name extension (``".TIF"``, any case), or None."""
    return EXTENSIONS.get(extension.lower())


def by_option(option: str) -> FormatSpec | None:
    """The row of a ``--format`` value or alias (``"jpg"``, any case), or None."""
    return _BY_OPTION.get(option.lower())


def sniff(data: bytes) -> FormatSpec | None:
    """The row whose magic number starts ``data``, or None."""
    return next((spec for spec in FORMATS if spec.signature(data)), None)


def option_list() -> str:
    """The ``--format`` values as a phrase: ``"png, jpeg, ... gif or npy"``."""
    return ", ".join(OPTIONS[:-1]) + " or " + OPTIONS[-1]
