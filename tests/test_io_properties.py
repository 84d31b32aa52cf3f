"""Property-based tests (hypothesis) of image reading and writing.

- The readers, fed any bytes, either decode an image or raise ImageReadError: never another
  exception, never a crash.
- Every lossless format and sample type round-trips exactly, for any shape and values.
- The public denoiser, on any small shape, dtype and value range, returns finite values of
  the input's shape and dtype.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tvdenoise as tvd
from tvdenoise.errors import ImageReadError
from tvdenoise.image_io import (
    ImageFile,
    decode_image,
    decode_stack,
    encode_image,
    encode_stack,
    from_unit_range,
    to_unit_range,
)

# Small enough that no random header makes a reader allocate much.
LIMIT = 1_000_000

MAGIC_NUMBERS = [
    b"",
    b"\x89PNG\r\n\x1a\n",
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    b"\xff\xd8\xff",
    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
    b"II*\x00",
    b"MM\x00*",
    b"II+\x00",
    b"BM",
    b"GIF87a",
    b"GIF89a",
    b"RIFF\x00\x00\x00\x00WEBPVP8L",
    b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    b"\x93NUMPY\x01\x00",
]


def check_decoded(pixels: np.ndarray, alpha: np.ndarray | None, leading: int) -> None:
    assert pixels.ndim in (2 + leading, 3 + leading)
    assert pixels.dtype.kind in "buif"
    if pixels.dtype.kind == "f":
        assert np.isfinite(pixels).all()
    if alpha is not None:
        assert alpha.shape == pixels.shape[: 2 + leading]


# Pillow warns (UserWarning) about each truncated or malformed file it is fed: expected here,
# filtered so that a real warning stands out in the suite's summary.
_CORRUPT_FILE_WARNINGS = pytest.mark.filterwarnings("ignore::UserWarning:PIL")


@_CORRUPT_FILE_WARNINGS
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prefix=st.sampled_from(MAGIC_NUMBERS), tail=st.binary(max_size=600))
def test_reader_raises_only_image_read_error(prefix: bytes, tail: bytes) -> None:
    data = prefix + tail
    try:
        image = decode_image(data, name="fuzz.png", max_pixels=LIMIT)
    except ImageReadError as error:
        message = str(error)
        assert message.startswith("fuzz.png: ")
        assert "\n" not in message
    else:
        check_decoded(image.pixels, image.alpha, 0)
    try:
        stack = decode_stack(data, name="fuzz.tif", max_pixels=LIMIT)
    except ImageReadError as error:
        assert str(error).startswith("fuzz.tif: ")
    else:
        check_decoded(stack.pixels, stack.alpha, 1)


@_CORRUPT_FILE_WARNINGS
@settings(max_examples=100, deadline=None)
@given(data=st.data(), position=st.integers(0, 10_000), value=st.integers(0, 255))
def test_corrupting_one_byte_of_a_real_file_raises_only_image_read_error(
    data: st.DataObject, position: int, value: int
) -> None:
    image_format = data.draw(st.sampled_from(["PNG", "JPEG", "TIFF", "BMP", "WEBP", "GIF", "NPY"]))
    pixels = np.random.default_rng(0).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    encoded = bytearray(encode_image(pixels, image_format))
    encoded[position % len(encoded)] = value
    cut = data.draw(st.integers(1, len(encoded)))
    try:
        image = decode_image(bytes(encoded[:cut]), max_pixels=LIMIT)
    except ImageReadError:
        return
    check_decoded(image.pixels, image.alpha, 0)


# (format, dtypes, channel counts) that must come back exactly.
LOSSLESS = [
    ("PNG", ["uint8", "uint16"], [1, 2, 3, 4]),
    ("TIFF", ["uint8", "uint16", "int16", "uint32", "float32", "float64"], [1, 2, 3, 4]),
    ("BMP", ["uint8"], [1, 3, 4]),
    ("WEBP", ["uint8"], [3, 4]),
    ("GIF", ["uint8"], [1]),
    ("NPY", ["uint8", "uint16", "int32", "float16", "float32", "float64"], [1, 2, 3, 4]),
]
CASES = [
    (fmt, dtype, channels)
    for fmt, dtypes, counts in LOSSLESS
    for dtype in dtypes
    for channels in counts
]


def pixel_arrays(dtype: str, shape: tuple[int, ...]) -> st.SearchStrategy[np.ndarray]:
    if np.dtype(dtype).kind == "f":
        width = 8 * np.dtype(dtype).itemsize
        elements = st.floats(allow_nan=False, allow_infinity=False, width=width)
        return hnp.arrays(dtype, shape, elements=elements)
    return hnp.arrays(dtype, shape)


def expected_parts(array: np.ndarray, channels: int) -> tuple[np.ndarray, np.ndarray | None]:
    if channels == 1:
        return array, None
    if channels == 2:
        return array[..., 0], array[..., 1]
    if channels == 3:
        return array, None
    return array[..., :3], array[..., 3]


@settings(max_examples=150, deadline=None)
@given(data=st.data(), case=st.sampled_from(CASES))
def test_lossless_write_then_read_is_exact(data: st.DataObject, case: tuple) -> None:
    image_format, dtype, channels = case
    height = data.draw(st.integers(1, 9), label="height")
    width = data.draw(st.integers(1, 9), label="width")
    shape = (height, width) if channels == 1 else (height, width, channels)
    array = data.draw(pixel_arrays(dtype, shape), label="pixels")

    image = decode_image(encode_image(array, image_format))

    pixels, alpha = expected_parts(array, channels)
    assert image.format == image_format
    assert image.pixels.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(image.pixels, pixels)
    if alpha is None:
        assert image.alpha is None
    else:
        np.testing.assert_array_equal(image.alpha, alpha)


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    case=st.sampled_from(
        [
            ("TIFF", "uint16"),
            ("TIFF", "float32"),
            ("NPY", "float64"),
            ("GIF", "uint8"),
            ("WEBP", "uint8"),
        ]
    ),
    pages=st.integers(1, 4),
)
def test_stack_write_then_read_is_exact(data: st.DataObject, case: tuple, pages: int) -> None:
    image_format, dtype = case
    height = data.draw(st.integers(1, 7), label="height")
    width = data.draw(st.integers(1, 7), label="width")
    shape = (pages, height, width) if image_format != "WEBP" else (pages, height, width, 3)
    array = data.draw(pixel_arrays(dtype, shape), label="pages")
    if image_format in ("GIF", "WEBP"):
        # Their encoders merge a frame equal to the one before into it (adding durations).
        assume(all(not np.array_equal(array[i], array[i + 1]) for i in range(pages - 1)))
    stack = decode_stack(encode_stack(array, image_format))
    assert stack.pages == pages
    np.testing.assert_array_equal(stack.pixels, array)


@settings(max_examples=40, deadline=None)
@given(
    data=st.data(),
    dtype=st.sampled_from(["uint8", "uint16", "float32", "float64"]),
    channels=st.sampled_from([0, 1, 3]),
    weight=st.floats(1e-4, 5.0),
)
def test_denoise_on_any_small_image_is_finite_and_keeps_shape_and_dtype(
    data: st.DataObject, dtype: str, channels: int, weight: float
) -> None:
    height = data.draw(st.integers(1, 8), label="height")
    width = data.draw(st.integers(1, 8), label="width")
    shape = (height, width) if channels == 0 else (height, width, channels)
    if np.dtype(dtype).kind == "f":
        magnitude = data.draw(st.sampled_from([1.0, 1e3, 1e6]), label="magnitude")
        elements = st.floats(-magnitude, magnitude, width=8 * np.dtype(dtype).itemsize)
        array = data.draw(hnp.arrays(dtype, shape, elements=elements), label="pixels")
    else:
        array = data.draw(hnp.arrays(dtype, shape), label="pixels")

    values, span = to_unit_range(array)
    denoised = tvd.denoise(values, weight=weight, max_iter=300)
    assert denoised.shape == values.shape
    assert np.isfinite(denoised).all()
    result = from_unit_range(denoised, span, array.dtype)
    assert result.dtype == array.dtype and result.shape == array.shape
    assert np.isfinite(result.astype(np.float64)).all()
    # ROF output lies within the input's range (a maximum principle of the L2 energy).
    low, high = float(values.min()), float(values.max())
    tolerance = 1e-3 * max(1.0, high - low)
    assert denoised.min() >= low - tolerance and denoised.max() <= high + tolerance


def test_image_file_for_a_round_trip_keeps_metadata_when_encoding_ignores_it() -> None:
    # NPY stores no metadata: encoding an ImageFile with metadata must still work.
    image = ImageFile(np.zeros((2, 2), np.float32), None, "TIFF", metadata={"dpi": (72, 72)})
    assert decode_image(encode_image(image, "NPY")).pixels.shape == (2, 2)


@_CORRUPT_FILE_WARNINGS
def test_every_single_byte_corruption_of_a_tiff_raises_only_image_read_error() -> None:
    # Exhaustive over positions: hypothesis once found tags of the wrong type or shape that
    # escaped as IndexError / AttributeError (positions 590 and 1618 with value 0, cut at 178).
    pixels = np.random.default_rng(0).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    original = encode_image(pixels, "TIFF")
    for position in range(len(original)):
        for value in (0, 255):
            encoded = bytearray(original)
            encoded[position] = value
            for cut in (len(encoded), 178):
                try:
                    image = decode_image(bytes(encoded[:cut]), max_pixels=LIMIT)
                except ImageReadError:
                    continue
                check_decoded(image.pixels, image.alpha, 0)
