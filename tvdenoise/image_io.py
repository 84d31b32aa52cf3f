"""Reading and writing image files: formats, bit depths, alpha, metadata and atomic writes.

FITS (``tvdenoise[astro]``) and video clips (MP4/MOV, MKV, WebM; ``tvdenoise[video]``) are
read and written through the same functions; see :mod:`tvdenoise.io.fits` and
:mod:`tvdenoise.io.video` for what they keep.

This module is the public face of the :mod:`tvdenoise.io` package, which does the work (see
"Where the code lives" below); it re-exports its names so that ``tvdenoise.image_io`` keeps
working. It reads PNG, JPEG, TIFF, BMP, WebP,
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
FITS    every integer and float     dropped              the header, HISTORY (astropy)
MP4...  uint8 RGB frames (H.264)    dropped              frame rate, audio (PyAV)
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
back. Infinite values are refused on reading (:class:`ImageReadError`), and NaN too except in
FITS files (its blank value) and with ``allow_nan=True`` (pixels to mask out of the data term).

Decoding is refused above ``max_pixels`` pixels (all pages together for stacks; default
:data:`DEFAULT_MAX_PIXELS`, Pillow's own decompression-bomb limit), checked from the file's
header before any pixel is decompressed.

Every failure raises :class:`~tvdenoise.errors.ImageReadError` or
:class:`~tvdenoise.errors.ImageWriteError` with a one-line message that starts with the file's
path, for example ``photo.png: no such file``. Writes are atomic: the image goes to a hidden
temporary file ``.<name>.tvdenoise-tmp-<random>`` beside the target, which is then moved into
place; :func:`clean_stale_temps` removes such files left behind by a killed process.

Where the code lives: :mod:`tvdenoise.io.formats` holds the table of formats (a row's
``codec`` names the module that decodes and encodes it); :mod:`tvdenoise.io.images` the
:class:`ImageFile` and :class:`ImageStack` types and format names; :mod:`tvdenoise.io.read`
and :mod:`tvdenoise.io.write` the functions below; :mod:`tvdenoise.io.png` (imagecodecs and
libpng), :mod:`tvdenoise.io.tiff` (tifffile), :mod:`tvdenoise.io.pillow_formats` (JPEG, BMP,
WebP, GIF and 8-bit PNG decoding), :mod:`tvdenoise.io.npy`, :mod:`tvdenoise.io.fits` and
:mod:`tvdenoise.io.video` the codecs;
:mod:`tvdenoise.io.metadata` what is carried (EXIF, ICC, orientation, dpi);
:mod:`tvdenoise.io.limits` the pixel limits; :mod:`tvdenoise.io.atomic` the atomic writes.
"""

from __future__ import annotations

from tvdenoise.io.atomic import TEMP_NAME_PATTERN, clean_stale_temps
from tvdenoise.io.images import SUPPORTED_EXTENSIONS, ImageFile, ImageStack, output_format_for
from tvdenoise.io.limits import DEFAULT_MAX_PIXELS
from tvdenoise.io.png import PNG_LEVEL as PNG_LEVEL
from tvdenoise.io.read import decode_image, decode_stack, load_image, load_stack
from tvdenoise.io.write import encode_image, encode_stack, save_image, save_stack
from tvdenoise.values import (
    ValueRange,
    from_float,
    from_unit_range,
    to_float,
    to_unit_range,
    value_range,
)

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
