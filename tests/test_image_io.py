"""Tests of tvdenoise.image_io: formats, bit depths, alpha, metadata, atomic writes, errors.

Reference values come from the file formats themselves (what was written must come back) and
from Pillow, tifffile and pypng reading the files independently of the code under test.
"""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import png
import pytest
import tifffile
from PIL import Image, ImageOps

from tvdenoise import image_io
from tvdenoise.errors import (
    ImageReadError,
    ImageWriteError,
    InvalidParameterError,
    TVDenoiseError,
)
from tvdenoise.image_io import (
    SUPPORTED_EXTENSIONS,
    ImageFile,
    decode_image,
    encode_image,
    from_float,
    load_image,
    output_format_for,
    save_image,
    to_float,
)
from tvdenoise.io import read as io_read
from tvdenoise.io import write as io_write

# Not square, so that a swap of height and width cannot pass unnoticed.
HEIGHT, WIDTH = 13, 17


def random_pixels(dtype: type, channels: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (HEIGHT, WIDTH) if channels == 1 else (HEIGHT, WIDTH, channels)
    if np.dtype(dtype).kind == "f":
        return rng.random(shape, dtype=np.float32).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


def pillow_bytes(image: Image.Image, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def files_in(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def assert_one_line_about(error: pytest.ExceptionInfo[TVDenoiseError], path: Path) -> None:
    message = str(error.value)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message


# --------------------------------------------------------------------------------------------
# Lossless round trips
# --------------------------------------------------------------------------------------------

LOSSLESS_CASES = [
    (suffix, dtype, channels)
    for suffix, dtypes in (
        (".png", (np.uint8, np.uint16)),
        (".tif", (np.uint8, np.uint16, np.float32)),
        (".bmp", (np.uint8,)),
    )
    for dtype in dtypes
    for channels in (1, 2, 3, 4)
    if not (suffix == ".bmp" and channels == 2)  # BMP stores grey+alpha as RGBA, see below
]


@pytest.mark.parametrize(("suffix", "dtype", "channels"), LOSSLESS_CASES)
def test_lossless_round_trip_is_exact(
    tmp_path: Path, suffix: str, dtype: type, channels: int
) -> None:
    original = random_pixels(dtype, channels)
    path = save_image(tmp_path / f"image{suffix}", original)
    loaded = load_image(path)

    has_alpha = channels in (2, 4)
    expected_pixels = original[..., :-1] if has_alpha else original
    if channels == 2:
        expected_pixels = expected_pixels[..., 0]
    assert loaded.pixels.dtype == np.dtype(dtype)
    assert loaded.pixels.shape == expected_pixels.shape
    np.testing.assert_array_equal(loaded.pixels, expected_pixels)
    if has_alpha:
        assert loaded.alpha is not None
        assert loaded.alpha.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(loaded.alpha, original[..., -1])
    else:
        assert loaded.alpha is None
    assert loaded.format == output_format_for(path)
    assert loaded.path == path


def test_bmp_stores_grey_with_alpha_as_rgba_keeping_both(tmp_path: Path) -> None:
    original = random_pixels(np.uint8, 2)
    loaded = load_image(save_image(tmp_path / "grey_alpha.bmp", original))
    np.testing.assert_array_equal(loaded.pixels, np.repeat(original[..., :1], 3, axis=-1))
    np.testing.assert_array_equal(loaded.alpha, original[..., 1])


def test_bmp_alpha_is_read_by_pillow_too(tmp_path: Path) -> None:
    original = random_pixels(np.uint8, 4)
    path = save_image(tmp_path / "rgba.bmp", original)
    with Image.open(path) as image:
        assert image.mode == "RGBA"
        np.testing.assert_array_equal(np.array(image), original)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_16_bit_png_is_read_as_16_bit_by_pypng(tmp_path: Path, channels: int) -> None:
    original = random_pixels(np.uint16, channels)
    path = save_image(tmp_path / "deep.png", original)
    width, height, rows, info = png.Reader(filename=str(path)).read()
    assert (width, height, info["bitdepth"], info["planes"]) == (WIDTH, HEIGHT, 16, channels)
    stored = np.array([np.asarray(row) for row in rows]).reshape(original.shape)
    np.testing.assert_array_equal(stored, original)


@pytest.mark.parametrize("interlace", [False, True])
@pytest.mark.parametrize("channels", [2, 3, 4])
def test_16_bit_png_from_another_writer_is_read_exactly(
    tmp_path: Path, channels: int, interlace: bool
) -> None:
    original = random_pixels(np.uint16, channels)
    path = tmp_path / "other.png"
    writer = png.Writer(
        WIDTH,
        HEIGHT,
        greyscale=channels == 2,
        alpha=channels in (2, 4),
        bitdepth=16,
        interlace=interlace,
    )
    with path.open("wb") as file:
        writer.write(file, original.reshape(HEIGHT, WIDTH * channels))

    loaded = load_image(path)

    colour = original[..., :-1] if channels in (2, 4) else original
    np.testing.assert_array_equal(loaded.pixels, colour[..., 0] if channels == 2 else colour)
    if channels in (2, 4):
        np.testing.assert_array_equal(loaded.alpha, original[..., -1])
    else:
        assert loaded.alpha is None


def test_interlaced_16_bit_png_is_read_without_a_word_on_stderr(tmp_path: Path) -> None:
    # libpng warns about interlaced files through imagecodecs' logger, which Python prints on
    # stderr when nothing is configured (a fresh process; pytest's own log capture would hide
    # it here).
    path = tmp_path / "interlaced.png"
    with path.open("wb") as file:
        png.Writer(WIDTH, HEIGHT, greyscale=False, bitdepth=16, interlace=True).write(
            file, random_pixels(np.uint16, 3).reshape(HEIGHT, WIDTH * 3)
        )
    code = f"from tvdenoise.image_io import load_image; load_image({str(path)!r})"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_16_bit_png_colour_key_becomes_alpha(tmp_path: Path) -> None:
    original = random_pixels(np.uint16, 3)
    key = tuple(int(value) for value in original[2, 5])
    original[7, 1] = key  # two pixels with the key colour
    path = tmp_path / "keyed.png"
    with path.open("wb") as file:
        png.Writer(WIDTH, HEIGHT, greyscale=False, bitdepth=16, transparent=key).write(
            file, original.reshape(HEIGHT, WIDTH * 3)
        )

    loaded = load_image(path)

    np.testing.assert_array_equal(loaded.pixels, original)
    expected = np.full((HEIGHT, WIDTH), 65535, dtype=np.uint16)
    expected[np.all(original == key, axis=-1)] = 0
    assert (expected == 0).sum() == 2
    np.testing.assert_array_equal(loaded.alpha, expected)


def test_16_bit_png_metadata_is_read_by_pillow_too(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x010F] = "Test camera maker"
    metadata = {"dpi": (300.0, 150.0), "icc_profile": b"profile " * 30, "exif": exif.tobytes()}
    pixels = random_pixels(np.uint16, 3)
    path = save_image(tmp_path / "deep.png", ImageFile(pixels, None, "PNG", metadata=metadata))
    with Image.open(path) as written:
        assert written.info["dpi"] == pytest.approx(
            (300.0, 150.0), abs=0.02
        )  # whole pixels per metre
        assert written.info["icc_profile"] == metadata["icc_profile"]
        assert written.getexif()[0x010F] == "Test camera maker"
        written.load()  # the pixel data decodes after the inserted chunks


@pytest.mark.parametrize(("suffix", "channels"), [(".png", 1), (".png", 3), (".tif", 3)])
def test_16_bit_gradient_keeps_values_8_bits_cannot_represent(
    tmp_path: Path, suffix: str, channels: int
) -> None:
    ramp = np.arange(HEIGHT * WIDTH, dtype=np.uint16).reshape(HEIGHT, WIDTH) + 1000
    original = ramp if channels == 1 else np.stack([ramp, ramp + 7, ramp + 300], axis=-1)
    assert np.any(original % 257 != 0)  # values that are not an 8-bit value times 257

    loaded = load_image(save_image(tmp_path / f"ramp{suffix}", original))

    assert loaded.pixels.dtype == np.uint16
    assert loaded.bit_depth == 16
    np.testing.assert_array_equal(loaded.pixels, original)


def test_float32_tiff_keeps_values_outside_unit_range(tmp_path: Path) -> None:
    original = np.linspace(-0.25, 1.5, HEIGHT * WIDTH, dtype=np.float32).reshape(HEIGHT, WIDTH)
    loaded = load_image(save_image(tmp_path / "float.tif", original))
    assert loaded.pixels.dtype == np.float32
    assert loaded.bit_depth == 32
    np.testing.assert_array_equal(loaded.pixels, original)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "float.tif"), original)


def test_encode_and_decode_bytes_round_trip() -> None:
    original = random_pixels(np.uint16, 3)
    image = decode_image(encode_image(original, "PNG"), name="<stdin>")
    assert image.path is None
    assert image.format == "PNG"
    np.testing.assert_array_equal(image.pixels, original)


# --------------------------------------------------------------------------------------------
# Lossy JPEG
# --------------------------------------------------------------------------------------------


def smooth_colour_image() -> np.ndarray:
    rows, columns = np.mgrid[0:48, 0:64]
    red = 128 + 100 * np.sin(rows / 9.0)
    green = 128 + 100 * np.cos(columns / 11.0)
    blue = (rows + columns) * 2.0
    return np.clip(np.stack([red, green, blue], axis=-1), 0, 255).astype(np.uint8)


def test_jpeg_round_trip_is_close(tmp_path: Path) -> None:
    original = smooth_colour_image()
    loaded = load_image(save_image(tmp_path / "photo.jpg", original, quality=95))
    assert loaded.format == "JPEG"
    assert loaded.pixels.shape == original.shape
    assert loaded.pixels.dtype == np.uint8
    error = np.abs(loaded.pixels.astype(float) - original.astype(float))
    assert error.mean() < 2.0


def test_jpeg_drops_alpha_and_stores_16_bit_as_8_bit(tmp_path: Path) -> None:
    colour = smooth_colour_image().astype(np.uint16) * 257
    alpha = np.full(colour.shape[:2], 65535, dtype=np.uint16)
    image = ImageFile(colour, alpha, "PNG")
    loaded = load_image(save_image(tmp_path / "photo.jpeg", image))
    assert loaded.alpha is None
    assert loaded.pixels.dtype == np.uint8
    assert np.abs(loaded.pixels.astype(float) - colour / 257.0).mean() < 2.0


def test_jpeg_quality_outside_range_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError, match="quality"):
        save_image(tmp_path / "photo.jpg", smooth_colour_image(), quality=0)
    assert files_in(tmp_path) == []


# --------------------------------------------------------------------------------------------
# EXIF orientation
# --------------------------------------------------------------------------------------------


def jpeg_with_orientation(pixels: np.ndarray, orientation: int) -> bytes:
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = orientation
    exif[0x010F] = "Test camera"
    return pillow_bytes(image, "JPEG", exif=exif.tobytes(), quality=95)


def test_exif_orientation_6_is_applied_on_load(tmp_path: Path) -> None:
    pixels = smooth_colour_image()  # 48 x 64
    path = tmp_path / "portrait.jpg"
    path.write_bytes(jpeg_with_orientation(pixels, 6))

    loaded = load_image(path)

    assert loaded.pixels.shape == (64, 48, 3)
    with Image.open(path) as stored:
        assert stored.size == (64, 48)  # the file itself is landscape
        upright = np.array(ImageOps.exif_transpose(stored))
    np.testing.assert_array_equal(loaded.pixels, upright)
    # The orientation tag is not carried over (the output would be turned twice), the rest is.
    carried = Image.Exif()
    carried.load(loaded.metadata["exif"])
    assert 0x0112 not in carried
    assert carried[0x010F] == "Test camera"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_pillow_exif_transpose(orientation: int) -> None:
    data = jpeg_with_orientation(random_pixels(np.uint8, 3), orientation)
    with Image.open(io.BytesIO(data)) as stored:
        expected = np.array(ImageOps.exif_transpose(stored))
    loaded = decode_image(data)
    np.testing.assert_array_equal(loaded.pixels, expected)
    assert loaded.pixels.flags.c_contiguous


def test_saved_image_of_rotated_jpeg_is_not_rotated_again(tmp_path: Path) -> None:
    source = tmp_path / "portrait.jpg"
    source.write_bytes(jpeg_with_orientation(smooth_colour_image(), 6))
    loaded = load_image(source)
    output = save_image(tmp_path / "portrait_out.png", loaded.pixels, like=loaded)
    with Image.open(output) as written:
        assert np.array(ImageOps.exif_transpose(written)).shape == loaded.pixels.shape


# --------------------------------------------------------------------------------------------
# Saving like an input: dtype, alpha, metadata, format
# --------------------------------------------------------------------------------------------


def test_save_like_keeps_dtype_alpha_and_metadata(tmp_path: Path) -> None:
    colour = random_pixels(np.uint16, 3)
    alpha = random_pixels(np.uint16, 1, seed=1)
    metadata = {"dpi": (300.0, 300.0), "icc_profile": b"fake profile " * 20}
    source = save_image(tmp_path / "input.png", ImageFile(colour, alpha, "PNG", metadata=metadata))
    original = load_image(source)

    result = to_float(original.pixels) * 0.5  # what a denoiser hands back: floats
    output = load_image(save_image(tmp_path / "input_denoised.png", result, like=original))

    assert output.pixels.dtype == np.uint16
    np.testing.assert_array_equal(output.pixels, from_float(result, np.uint16))
    np.testing.assert_array_equal(output.alpha, alpha)
    assert output.metadata["dpi"] == pytest.approx((300.0, 300.0), abs=0.01)
    assert output.metadata["icc_profile"] == metadata["icc_profile"]


@pytest.mark.parametrize("suffix", [".jpg", ".tif", ".bmp", ".png"])
def test_metadata_is_carried_where_the_format_allows(tmp_path: Path, suffix: str) -> None:
    pixels = smooth_colour_image()
    metadata = {"dpi": (200.0, 200.0), "icc_profile": b"profile bytes" * 10}
    loaded = load_image(
        save_image(tmp_path / f"meta{suffix}", ImageFile(pixels, None, "PNG", metadata=metadata))
    )
    assert loaded.metadata["dpi"] == pytest.approx((200.0, 200.0), abs=0.01)
    if suffix != ".bmp":  # BMP has no place for a profile
        assert loaded.metadata["icc_profile"] == metadata["icc_profile"]


def test_save_like_uses_the_extension_format_over_like(tmp_path: Path) -> None:
    original = load_image(save_image(tmp_path / "scan.tif", random_pixels(np.uint8, 3)))
    path = save_image(tmp_path / "scan.png", original.pixels, like=original)
    assert load_image(path).format == "PNG"
    with Image.open(path) as written:
        assert written.format == "PNG"


def test_save_like_without_extension_uses_like_format(tmp_path: Path) -> None:
    original = load_image(save_image(tmp_path / "scan.tif", random_pixels(np.uint16, 1)))
    path = save_image(tmp_path / "scan_out", original.pixels, like=original)
    assert tifffile.imread(path).dtype == np.uint16


def test_explicit_format_overrides_extension(tmp_path: Path) -> None:
    path = save_image(tmp_path / "actually_tiff.png", random_pixels(np.uint8, 1), format="tiff")
    assert load_image(path).format == "TIFF"


def test_float_image_without_like_is_written_as_8_bit_png(tmp_path: Path) -> None:
    values = np.array([[0.0, 0.5, 1.0, 1.7, -0.2]], dtype=np.float64)
    loaded = load_image(save_image(tmp_path / "float.png", values))
    np.testing.assert_array_equal(loaded.pixels, [[0, 128, 255, 255, 0]])


def test_like_alpha_with_other_shape_is_refused(tmp_path: Path) -> None:
    like = ImageFile(random_pixels(np.uint8, 3), random_pixels(np.uint8, 1), "PNG")
    with pytest.raises(ImageWriteError, match="alpha"):
        save_image(tmp_path / "cropped.png", np.zeros((4, 4, 3), np.uint8), like=like)
    assert files_in(tmp_path) == []


# --------------------------------------------------------------------------------------------
# Conversions of file variants on read
# --------------------------------------------------------------------------------------------


def palette_image() -> Image.Image:
    indices = (np.arange(HEIGHT * WIDTH).reshape(HEIGHT, WIDTH) % 4).astype(np.uint8)
    image = Image.fromarray(indices, mode="L").convert("P")
    image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30])
    return image


def test_palette_png_loads_as_rgb(tmp_path: Path) -> None:
    path = tmp_path / "palette.png"
    palette_image().save(path)
    loaded = load_image(path)
    assert loaded.pixels.shape == (HEIGHT, WIDTH, 3)
    assert loaded.pixels.dtype == np.uint8
    assert loaded.alpha is None
    np.testing.assert_array_equal(loaded.pixels, np.array(palette_image().convert("RGB")))
    np.testing.assert_array_equal(
        loaded.pixels[0, :4], [[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]
    )


def test_palette_png_with_transparency_loads_as_rgb_plus_alpha(tmp_path: Path) -> None:
    path = tmp_path / "palette_alpha.png"
    palette_image().save(path, transparency=0)
    loaded = load_image(path)
    assert loaded.pixels.shape == (HEIGHT, WIDTH, 3)
    assert loaded.alpha is not None
    np.testing.assert_array_equal(loaded.alpha[0, :4], [0, 255, 255, 255])


def test_one_bit_png_loads_as_8_bit_grey(tmp_path: Path) -> None:
    bits = random_pixels(np.uint8, 1) > 127
    path = tmp_path / "bits.png"
    Image.fromarray(bits).save(path)
    loaded = load_image(path)
    assert loaded.pixels.dtype == np.uint8
    np.testing.assert_array_equal(loaded.pixels, np.where(bits, 255, 0))


def test_palette_tiff_loads_as_rgb(tmp_path: Path) -> None:
    path = tmp_path / "palette.tif"
    palette_image().save(path)
    loaded = load_image(path)
    np.testing.assert_array_equal(loaded.pixels, np.array(palette_image().convert("RGB")))


def test_white_is_zero_tiff_is_inverted_to_black_is_zero(tmp_path: Path) -> None:
    grey = random_pixels(np.uint8, 1)
    tifffile.imwrite(tmp_path / "inverted.tif", grey, photometric="miniswhite")
    np.testing.assert_array_equal(load_image(tmp_path / "inverted.tif").pixels, 255 - grey)


def test_lzw_tiff_is_read(tmp_path: Path) -> None:
    # tifffile needs the optional imagecodecs package for LZW; Pillow reads it otherwise.
    grey = random_pixels(np.uint8, 1)
    Image.fromarray(grey).save(tmp_path / "lzw.tif", compression="tiff_lzw")
    np.testing.assert_array_equal(load_image(tmp_path / "lzw.tif").pixels, grey)


def test_tiff_resolution_in_centimetres_becomes_dpi(tmp_path: Path) -> None:
    tifffile.imwrite(
        tmp_path / "cm.tif",
        random_pixels(np.uint8, 1),
        resolution=(100, 100),
        resolutionunit="CENTIMETER",
    )
    assert load_image(tmp_path / "cm.tif").metadata["dpi"] == pytest.approx((254.0, 254.0))


def test_multi_page_tiff_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.zeros((3, HEIGHT, WIDTH), np.uint16), photometric="minisblack")
    with pytest.raises(ImageReadError, match="3 pages") as error:
        load_image(path)
    assert_one_line_about(error, path)


def test_loading_does_not_modify_the_file(tmp_path: Path) -> None:
    path = tmp_path / "portrait.jpg"
    path.write_bytes(jpeg_with_orientation(smooth_colour_image(), 6))
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    load_image(path)
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


# --------------------------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------------------------


def test_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    for suffix in sorted(SUPPORTED_EXTENSIONS):
        save_image(tmp_path / f"out{suffix}", random_pixels(np.uint8, 3))
    assert files_in(tmp_path) == sorted(f"out{suffix}" for suffix in SUPPORTED_EXTENSIONS)


def test_existing_file_is_not_replaced_without_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "out.png"
    path.write_bytes(b"precious")
    with pytest.raises(ImageWriteError, match="exists") as error:
        save_image(path, random_pixels(np.uint8, 1))
    assert_one_line_about(error, path)
    assert path.read_bytes() == b"precious"
    assert files_in(tmp_path) == ["out.png"]


def test_existing_file_is_replaced_with_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "out.png"
    path.write_bytes(b"old")
    pixels = random_pixels(np.uint8, 1)
    assert save_image(path, pixels, overwrite=True) == path
    np.testing.assert_array_equal(load_image(path).pixels, pixels)
    assert files_in(tmp_path) == ["out.png"]


def test_file_appearing_during_the_write_is_not_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "out.png"
    real_encode = io_write._encode

    def encode_then_race(*args: object, **kwargs: object) -> bytes:
        encoded = real_encode(*args, **kwargs)  # type: ignore[arg-type]
        path.write_bytes(b"written by another process")
        return encoded

    monkeypatch.setattr(io_write, "_encode", encode_then_race)
    with pytest.raises(ImageWriteError, match="exists"):
        save_image(path, random_pixels(np.uint8, 1))
    assert path.read_bytes() == b"written by another process"
    assert files_in(tmp_path) == ["out.png"]


def test_file_systems_without_hard_links_still_get_safe_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(source: object, target: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    pixels = random_pixels(np.uint8, 3)
    path = save_image(tmp_path / "out.png", pixels)
    np.testing.assert_array_equal(load_image(path).pixels, pixels)
    with pytest.raises(ImageWriteError, match="exists"):
        save_image(path, pixels)
    assert files_in(tmp_path) == ["out.png"]


def test_failed_write_removes_the_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(source: object, target: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "link", disk_full)
    path = tmp_path / "out.png"
    with pytest.raises(ImageWriteError, match="no space left") as error:
        save_image(path, random_pixels(np.uint8, 1))
    assert_one_line_about(error, path)
    assert files_in(tmp_path) == []


def test_temporary_file_is_hidden_and_named_tmp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []

    def record_link(source: str | os.PathLike[str], target: object) -> None:
        seen.append(Path(source).name)
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "link", record_link)
    with pytest.raises(ImageWriteError, match="Input/output error"):
        save_image(tmp_path / "out.png", random_pixels(np.uint8, 1))
    assert len(seen) == 1
    assert image_io.TEMP_NAME_PATTERN.match(seen[0])
    assert seen[0].startswith(".out.png.tvdenoise-")
    assert seen[0].endswith(".tmp")
    assert files_in(tmp_path) == []


# --------------------------------------------------------------------------------------------
# Errors: one line, starting with the path
# --------------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    with pytest.raises(ImageReadError, match="no such file") as error:
        load_image(path)
    assert_one_line_about(error, path)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    path = tmp_path / "photos.png"
    path.mkdir()
    with pytest.raises(ImageReadError, match="is a directory") as error:
        load_image(path)
    assert_one_line_about(error, path)
    with pytest.raises(ImageWriteError, match="is a directory") as write_error:
        save_image(path, random_pixels(np.uint8, 1), overwrite=True)
    assert_one_line_about(write_error, path)


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.touch()
    with pytest.raises(ImageReadError, match="empty") as error:
        load_image(path)
    assert_one_line_about(error, path)


def test_random_bytes_with_png_extension(tmp_path: Path) -> None:
    path = tmp_path / "noise.png"
    path.write_bytes(np.random.default_rng(3).bytes(1000))
    with pytest.raises(ImageReadError, match="cannot decode") as error:
        load_image(path)
    assert_one_line_about(error, path)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif", ".bmp"])
def test_truncated_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"cut{suffix}"
    save_image(path, smooth_colour_image())
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ImageReadError, match="cannot decode") as error:
        load_image(path)
    assert_one_line_about(error, path)


def test_unknown_extension_on_read(tmp_path: Path) -> None:
    path = tmp_path / "data.xyz"
    path.write_bytes(b"not an image at all")
    with pytest.raises(ImageReadError, match=r"unsupported format '\.xyz'") as error:
        load_image(path)
    assert_one_line_about(error, path)


def test_unsupported_image_format_is_named(tmp_path: Path) -> None:
    path = tmp_path / "icon.png"  # an ICO file with a misleading extension
    Image.fromarray(random_pixels(np.uint8, 3)).save(path, format="ICO")
    with pytest.raises(ImageReadError, match="unsupported format ICO") as error:
        load_image(path)
    assert_one_line_about(error, path)


def test_unknown_extension_on_write(tmp_path: Path) -> None:
    path = tmp_path / "out.xyz"
    with pytest.raises(ImageWriteError, match=r"unsupported format '\.xyz'") as error:
        save_image(path, random_pixels(np.uint8, 1))
    assert_one_line_about(error, path)
    assert ".png" in str(error.value)
    assert files_in(tmp_path) == []


def test_missing_output_folder(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "out.png"
    with pytest.raises(ImageWriteError, match="does not exist") as error:
        save_image(path, random_pixels(np.uint8, 1))
    assert_one_line_about(error, path)


def test_bad_shape_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "out.png"
    with pytest.raises(ImageWriteError, match="shape") as error:
        save_image(path, np.zeros((4, 4, 5), np.uint8))
    assert_one_line_about(error, path)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file(tmp_path: Path) -> None:
    path = save_image(tmp_path / "secret.png", random_pixels(np.uint8, 1))
    path.chmod(0)
    try:
        with pytest.raises(ImageReadError, match="permission denied") as error:
            load_image(path)
        assert_one_line_about(error, path)
    finally:
        path.chmod(0o644)


def test_permission_denied_on_read_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same path as test_unreadable_file, also when the tests run as root.
    path = save_image(tmp_path / "secret.png", random_pixels(np.uint8, 1))

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(io_read, "open", refuse, raising=False)
    with pytest.raises(ImageReadError, match="permission denied") as error:
        load_image(path)
    assert_one_line_about(error, path)


def test_permission_denied_on_write_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "open", refuse)
    path = tmp_path / "x.png"
    with pytest.raises(ImageWriteError, match="permission denied") as error:
        save_image(path, random_pixels(np.uint8, 1))
    assert_one_line_about(error, path)
    assert files_in(tmp_path) == []


def test_output_format_for_extensions() -> None:
    assert output_format_for("a.png") == "PNG"
    assert output_format_for("a.JPG") == "JPEG"
    assert output_format_for(Path("a.jpeg")) == "JPEG"
    assert output_format_for("dir.d/a.tiff") == "TIFF"
    assert output_format_for("a.tif") == "TIFF"
    assert output_format_for("a.bmp") == "BMP"
    assert output_format_for("a.WebP") == "WEBP"
    assert output_format_for("a.gif") == "GIF"
    assert output_format_for("a.npy") == "NPY"
    assert output_format_for("a.FITS") == "FITS"
    with pytest.raises(ImageWriteError, match=r"^a\.jp2: unsupported format"):
        output_format_for("a.jp2")
    assert {
        ".png",
        ".jpg",
        ".jpeg",
        ".tif",
        ".tiff",
        ".bmp",
        ".webp",
        ".gif",
        ".npy",
        ".fits",
        ".fit",
        ".fts",
        ".mp4",
        ".m4v",
        ".mov",
        ".mkv",
        ".webm",
    } == SUPPORTED_EXTENSIONS


# --------------------------------------------------------------------------------------------
# to_float / from_float
# --------------------------------------------------------------------------------------------


def test_to_float_scales_by_dtype_maximum() -> None:
    np.testing.assert_array_equal(
        to_float(np.array([0, 128, 255], np.uint8)), np.array([0, 128, 255], np.float32) / 255
    )
    np.testing.assert_array_equal(
        to_float(np.array([0, 32768, 65535], np.uint16)),
        np.array([0, 32768, 65535], np.float32) / 65535,
    )
    assert to_float(np.array([0, 255], np.uint8)).dtype == np.float32
    assert to_float(np.array([0, 65535], np.uint16)).tolist() == [0.0, 1.0]
    np.testing.assert_array_equal(to_float(np.array([False, True])), [0.0, 1.0])


def test_to_float_returns_floats_unchanged() -> None:
    values = np.array([-0.5, 0.25, 2.0], dtype=np.float64)
    assert to_float(values) is values
    assert to_float(values.astype(np.float32)).dtype == np.float32


def test_from_float_rounds_half_to_even_and_clips() -> None:
    np.testing.assert_array_equal(
        from_float(np.array([0.0, 0.5, 1.0, -0.1, 1.1, np.nan]), np.uint8), [0, 128, 255, 0, 255, 0]
    )
    np.testing.assert_array_equal(
        from_float(np.array([0.0, 0.5, 1.0]), np.uint16), [0, 32768, 65535]
    )
    # 2.5 / 255 scales back to 2.5, which rounds to the even neighbour 2.
    assert from_float(np.array([2.5 / 255]), np.uint8)[0] == 2
    values = np.array([-0.5, 1.5])
    np.testing.assert_array_equal(from_float(values, np.float32), values.astype(np.float32))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_from_float_inverts_to_float(dtype: type) -> None:
    maximum = np.iinfo(dtype).max
    every_value = np.arange(0, maximum + 1, dtype=dtype)
    np.testing.assert_array_equal(from_float(to_float(every_value), dtype), every_value)


def test_conversion_errors_are_the_project_error() -> None:
    with pytest.raises(InvalidParameterError, match="complex"):
        to_float(np.zeros(2, np.complex64))
    with pytest.raises(InvalidParameterError, match="dtype"):
        from_float(np.zeros(2), np.complex64)


def test_lzw_sixteen_bit_rgb_tiff_is_read_exactly(tmp_path: Path) -> None:
    # Scanners write LZW-compressed 16-bit colour TIFFs; imagecodecs (a dependency) decodes them.
    import tifffile

    pixels = np.random.default_rng(5).integers(0, 65536, (20, 30, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "scan.tif", pixels, compression="lzw", photometric="rgb")
    loaded = load_image(tmp_path / "scan.tif")
    assert loaded.pixels.dtype == np.uint16
    np.testing.assert_array_equal(loaded.pixels, pixels)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("shape", [(37, 53), (37, 53, 3), (5, 1, 4), (1, 1)])
def test_planes_round_trip_like_to_float_and_from_float(dtype, shape) -> None:
    # The solver's planes (C, H, W) hold exactly to_float's values, and from_float_planes
    # gives from_float's pixels in the (H, W[, C]) layout: x / max in float32 one way; the
    # value times max, rounded half to even, clipped, NaN as 0 the other (written out here).
    from tvdenoise.values import from_float_planes, to_float_planes

    rng = np.random.default_rng(7)
    maximum = np.iinfo(dtype).max
    pixels = rng.integers(0, maximum + 1, shape, dtype=dtype)
    planes = to_float_planes(pixels)
    channels = pixels[..., None] if pixels.ndim == 2 else pixels
    assert planes.dtype == np.float32 and planes.flags.c_contiguous
    expected = channels.transpose(2, 0, 1).astype(np.float32) / np.float32(maximum)
    np.testing.assert_array_equal(planes, expected)
    values = (rng.random(planes.shape) * 1.2 - 0.1).astype(np.float32)
    values.flat[0] = np.nan
    back = from_float_planes(values, dtype, grey=pixels.ndim == 2)
    assert back.shape == pixels.shape and back.dtype == dtype
    scaled = np.clip(np.rint(values.astype(np.float64) * maximum), 0, maximum)
    scaled = np.nan_to_num(scaled, nan=0.0).astype(dtype).transpose(1, 2, 0)
    np.testing.assert_array_equal(back, scaled[..., 0] if pixels.ndim == 2 else scaled)
    assert back.reshape(-1)[0] == 0  # the NaN


def test_planes_refuse_what_they_do_not_take() -> None:
    from tvdenoise.values import from_float_planes, planes_apply, to_float_planes

    assert not planes_apply(np.zeros((4, 4), np.float32))
    assert not planes_apply(np.zeros((2, 4, 4, 3), np.uint8))
    with pytest.raises(InvalidParameterError, match="uint8 or uint16"):
        to_float_planes(np.zeros((4, 4), np.int32))
    with pytest.raises(InvalidParameterError, match="integer pixels"):
        from_float_planes(np.zeros((1, 4, 4), np.float32), np.float32, grey=True)


def _idat_stream(data: bytes) -> bytes:
    """The zlib stream of a PNG: its IDAT chunks' payloads joined."""
    import struct

    position, stream = 8, b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        if kind == b"IDAT":
            stream += data[position + 8 : position + 8 + length]
        position += 12 + length
    return stream


@pytest.mark.parametrize(
    "shape", [(1, 1), (1, 7), (9, 1), (13, 11), (13, 11, 2), (13, 11, 3), (6, 5, 4)]
)
def test_png8_is_average_filtered_rows_in_one_zlib_stream(shape, monkeypatch) -> None:
    # Parts of 20 bytes force several sync-flushed parts: joined they must inflate as one zlib
    # stream (checked by zlib itself, Adler-32 trailer included) to the scanlines of the PNG
    # Average filter, written out here byte by byte from the specification; Pillow and libpng
    # read the pixels back.
    import zlib

    import imagecodecs
    from PIL import Image

    from tvdenoise.io import png

    monkeypatch.setattr(png, "PNG_PART_BYTES", 20)
    pixels = np.random.default_rng(11).integers(0, 256, shape, dtype=np.uint8)
    data = png._encode_png8(pixels, {})
    samples = 1 if pixels.ndim == 2 else pixels.shape[2]
    rows = pixels.reshape(shape[0], -1).astype(int)
    expected = bytearray()
    for r, row in enumerate(rows):
        expected.append(3)
        for k, value in enumerate(row):
            left = row[k - samples] if k >= samples else 0
            above = rows[r - 1][k] if r > 0 else 0
            expected.append((value - (left + above) // 2) % 256)
    assert zlib.decompress(_idat_stream(data)) == bytes(expected)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), pixels)
    np.testing.assert_array_equal(imagecodecs.png_decode(data), pixels)


def test_adler32_of_parts_combines_to_the_whole() -> None:
    import zlib

    from tvdenoise.io.png import _adler32_combine

    rng = np.random.default_rng(5)
    for size_a, size_b in [(0, 0), (0, 10), (10, 0), (1, 65521), (70000, 200000), (65520, 3)]:
        a = rng.integers(0, 256, size_a, dtype=np.uint8).tobytes()
        b = rng.integers(0, 256, size_b, dtype=np.uint8).tobytes()
        assert _adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b)) == zlib.adler32(a + b)
