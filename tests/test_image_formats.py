"""Formats beyond the basics: WebP, GIF, NPY, stacks, JPEG quality, precision, metadata.

Reference values come from independent readers and writers (Pillow, tifffile, numpy), from
the file formats' own rules (what a lossless format stores must come back), and from the
scaling law of the ROF energy, never from the code under test.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageSequence

import tvdenoise as tvd
from tvdenoise.errors import ImageReadError, ImageWriteError, InvalidParameterError
from tvdenoise.image_io import (
    ImageFile,
    ImageStack,
    ValueRange,
    decode_image,
    encode_image,
    encode_stack,
    from_float,
    from_unit_range,
    load_image,
    load_stack,
    save_image,
    save_stack,
    to_float,
    to_unit_range,
    value_range,
)

HEIGHT, WIDTH = 13, 17


def random_pixels(dtype: type, channels: int, seed: int = 0, pages: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape: tuple[int, ...] = (HEIGHT, WIDTH) if channels == 1 else (HEIGHT, WIDTH, channels)
    if pages:
        shape = (pages, *shape)
    if np.dtype(dtype).kind == "f":
        return rng.random(shape, dtype=np.float64).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


def smooth_colour_image() -> np.ndarray:
    rows, columns = np.mgrid[0:48, 0:64]
    red = 128 + 100 * np.sin(rows / 9.0)
    green = 128 + 100 * np.cos(columns / 11.0)
    blue = (rows + columns) * 2.0
    return np.clip(np.stack([red, green, blue], axis=-1), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# WebP
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [3, 4])
def test_webp_is_written_lossless_and_read_back_exactly(tmp_path: Path, channels: int) -> None:
    original = random_pixels(np.uint8, channels)
    path = save_image(tmp_path / "image.webp", original)
    assert path.read_bytes()[12:16] == b"VP8L"  # the lossless coding
    with Image.open(path) as independent:
        np.testing.assert_array_equal(np.array(independent), original)
    loaded = load_image(path)
    assert loaded.format == "WEBP"
    np.testing.assert_array_equal(loaded.pixels, original[..., :3])
    if channels == 4:
        np.testing.assert_array_equal(loaded.alpha, original[..., 3])
    assert loaded.metadata["webp_lossless"] is True


def test_webp_stores_grey_as_rgb(tmp_path: Path) -> None:
    grey = random_pixels(np.uint8, 1)
    loaded = load_image(save_image(tmp_path / "grey.webp", grey))
    np.testing.assert_array_equal(loaded.pixels, np.repeat(grey[..., None], 3, axis=-1))


def test_webp_with_quality_is_lossy_and_close(tmp_path: Path) -> None:
    original = smooth_colour_image()
    path = save_image(tmp_path / "photo.webp", original, quality=90)
    assert path.read_bytes()[12:16] == b"VP8 "  # the lossy coding
    loaded = load_image(path)
    assert loaded.metadata["webp_lossless"] is False
    assert np.abs(loaded.pixels.astype(float) - original).mean() < 3.0


def test_lossy_webp_input_gives_lossy_webp_output(tmp_path: Path) -> None:
    source = tmp_path / "in.webp"
    Image.fromarray(smooth_colour_image()).save(source, quality=80)
    image = load_image(source)
    output = save_image(tmp_path / "out.webp", to_float(image.pixels), like=image)
    assert output.read_bytes()[12:16] == b"VP8 "


# --------------------------------------------------------------------------------------------
# GIF
# --------------------------------------------------------------------------------------------


def animated_gif(path: Path, frames: list[np.ndarray], durations: list[int]) -> None:
    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=durations, loop=0)


def test_gif_first_frame_by_load_image_all_frames_by_load_stack(tmp_path: Path) -> None:
    frames = [np.roll(random_pixels(np.uint8, 1), shift, axis=1) for shift in range(3)]
    path = tmp_path / "anim.gif"
    animated_gif(path, frames, [40, 80, 120])

    first = load_image(path)
    assert first.format == "GIF"
    np.testing.assert_array_equal(first.pixels, frames[0])

    stack = load_stack(path)
    assert stack.pages == 3
    np.testing.assert_array_equal(stack.pixels, np.stack(frames))
    assert stack.metadata["durations"] == [40, 80, 120]
    assert stack.metadata["loop"] == 0


def test_gif_stack_round_trip_keeps_frames_and_durations(tmp_path: Path) -> None:
    # At most 256 colours a frame: stored exactly.
    palette = random_pixels(np.uint8, 3)[:4, :10].reshape(-1, 3)  # 40 colours
    rng = np.random.default_rng(7)
    frames = palette[rng.integers(0, len(palette), size=(4, HEIGHT, WIDTH))]
    stack = ImageStack(frames, None, "GIF", metadata={"durations": [10, 20, 30, 40], "loop": 2})
    path = save_stack(tmp_path / "out.gif", stack)
    with Image.open(path) as independent:
        read = [np.array(frame.convert("RGB")) for frame in ImageSequence.Iterator(independent)]
    np.testing.assert_array_equal(np.stack(read), frames)
    loaded = load_stack(path)
    np.testing.assert_array_equal(loaded.pixels, frames)
    assert loaded.metadata["durations"] == [10, 20, 30, 40]
    assert loaded.metadata["loop"] == 2


def test_gif_binary_transparency_round_trips(tmp_path: Path) -> None:
    colour = random_pixels(np.uint8, 3)[:, :, :]
    colour = (colour // 64) * 64  # 64 colours
    alpha = np.where(random_pixels(np.uint8, 1, seed=3) < 100, 0, 255).astype(np.uint8)
    loaded = load_image(save_image(tmp_path / "t.gif", np.dstack([colour, alpha])))
    np.testing.assert_array_equal(loaded.alpha, alpha)
    visible = alpha == 255
    np.testing.assert_array_equal(loaded.pixels[visible], colour[visible])


def test_gif_with_many_colours_is_reduced_to_256_without_dithering(tmp_path: Path) -> None:
    original = smooth_colour_image()
    assert len(np.unique(original.reshape(-1, 3), axis=0)) > 256
    loaded = load_image(save_image(tmp_path / "many.gif", original))
    assert len(np.unique(loaded.pixels.reshape(-1, 3), axis=0)) <= 256
    # Better than the fixed 6 x 6 x 6 web palette (216 colours), the naive alternative.
    web_palette = np.rint(original / 51.0) * 51.0
    naive_error = np.abs(web_palette - original).mean()
    assert np.abs(loaded.pixels.astype(float) - original).mean() < 0.6 * naive_error


def test_grey_gif_is_exact(tmp_path: Path) -> None:
    grey = random_pixels(np.uint8, 1)
    path = save_image(tmp_path / "grey.gif", grey)
    with Image.open(path) as independent:
        np.testing.assert_array_equal(np.array(independent.convert("L")), grey)
    np.testing.assert_array_equal(load_image(path).pixels, grey)


# --------------------------------------------------------------------------------------------
# NPY
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint16, np.uint8, np.int16])
@pytest.mark.parametrize("channels", [1, 3])
def test_npy_written_by_numpy_is_read_exactly(tmp_path: Path, dtype: type, channels: int) -> None:
    original = random_pixels(dtype, channels)
    if np.dtype(dtype).kind == "f":
        original = (original * 5000 - 100).astype(dtype)  # far outside [0, 1]
    np.save(tmp_path / "data.npy", original)
    loaded = load_image(tmp_path / "data.npy")
    assert loaded.format == "NPY"
    assert loaded.pixels.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(loaded.pixels, original)


def test_npy_written_by_save_image_is_read_by_numpy(tmp_path: Path) -> None:
    values = np.linspace(-2.0, 3.0, HEIGHT * WIDTH).reshape(HEIGHT, WIDTH)
    alpha = np.full((HEIGHT, WIDTH), 0.5)
    path = save_image(tmp_path / "out.npy", ImageFile(values, alpha, "NPY"))
    stored = np.load(path, allow_pickle=False)
    np.testing.assert_array_equal(stored, np.stack([values, alpha], axis=-1))


def test_npy_save_like_keeps_float_values_outside_unit_range(tmp_path: Path) -> None:
    values = np.linspace(-2.0, 3.0, HEIGHT * WIDTH, dtype=np.float32).reshape(HEIGHT, WIDTH)
    np.save(tmp_path / "in.npy", values)
    image = load_image(tmp_path / "in.npy")
    out = load_image(save_image(tmp_path / "out.npy", image.pixels * 2, like=image))
    np.testing.assert_array_equal(out.pixels, values * 2)


def test_npy_with_python_objects_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "objects.npy"
    np.save(path, np.array([[{"a": 1}]], dtype=object), allow_pickle=True)
    with pytest.raises(ImageReadError, match="dtype object"):
        load_image(path)


def test_npy_stack_needs_load_stack(tmp_path: Path) -> None:
    pages = random_pixels(np.float32, 1, pages=5)
    np.save(tmp_path / "volume.npy", pages)
    with pytest.raises(ImageReadError, match="load_stack"):
        load_image(tmp_path / "volume.npy")
    stack = load_stack(tmp_path / "volume.npy")
    np.testing.assert_array_equal(stack.pixels, pages)


# --------------------------------------------------------------------------------------------
# Multi-page TIFF stacks
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_multi_page_tiff_written_by_tifffile_loads_as_stack(tmp_path: Path, dtype: type) -> None:
    pages = random_pixels(dtype, 1, pages=4)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, pages, photometric="minisblack")
    stack = load_stack(path)
    assert stack.pages == 4
    assert stack.pixels.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(stack.pixels, pages)
    np.testing.assert_array_equal(stack.page(2).pixels, pages[2])


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_save_stack_writes_one_tiff_page_per_image(tmp_path: Path, channels: int) -> None:
    pages = random_pixels(np.uint16, channels, pages=3)
    path = save_stack(tmp_path / "out.tif", pages)
    with tifffile.TiffFile(path) as tiff:
        assert len(tiff.pages) == 3
        np.testing.assert_array_equal(tiff.pages[1].asarray(), pages[1])
    loaded = load_stack(path)
    colour = pages[..., :-1] if channels in (2, 4) else pages
    if channels == 2:
        colour = colour[..., 0]
    np.testing.assert_array_equal(loaded.pixels, colour)
    if channels in (2, 4):
        np.testing.assert_array_equal(loaded.alpha, pages[..., -1])


def _compressions(path: Path) -> list[str]:
    """The Compression tag of each page, as tifffile names it."""
    with tifffile.TiffFile(path) as tiff:
        return [page.compression.name for page in tiff.pages]


@pytest.mark.parametrize(
    ("written", "tag"),
    [
        (None, "NONE"),
        ("lzw", "LZW"),
        ("zlib", "ADOBE_DEFLATE"),
        ("deflate", "ADOBE_DEFLATE"),  # the other deflate tag value is written as Adobe's
        ("zstd", "ZSTD"),
        ("packbits", "PACKBITS"),
        ("lzma", "ADOBE_DEFLATE"),  # not one tvdenoise writes: deflate
    ],
)
def test_tiff_output_keeps_the_input_compression(
    tmp_path: Path, written: str | None, tag: str
) -> None:
    pixels = random_pixels(np.uint16, 3)
    source = tmp_path / "in.tif"
    tifffile.imwrite(source, pixels, photometric="rgb", compression=written)
    save_image(tmp_path / "out.tif", load_image(source))
    assert _compressions(tmp_path / "out.tif") == [tag]
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out.tif"), pixels)


def test_tiff_pages_keep_the_input_compression_and_other_inputs_get_deflate(
    tmp_path: Path,
) -> None:
    pages = random_pixels(np.uint8, 1, pages=3)
    tifffile.imwrite(tmp_path / "in.tif", pages, photometric="minisblack", compression="lzw")
    save_stack(tmp_path / "out.tif", load_stack(tmp_path / "in.tif"))
    assert _compressions(tmp_path / "out.tif") == ["LZW"] * 3
    png = save_image(tmp_path / "in.png", pages[0])
    save_image(tmp_path / "from_png.tif", load_image(png))
    assert _compressions(tmp_path / "from_png.tif") == ["ADOBE_DEFLATE"]


def test_tiff_compression_is_chosen_by_the_metadata(tmp_path: Path) -> None:
    pixels = random_pixels(np.uint8, 1)
    image = ImageFile(pixels, None, "PNG", metadata={"tiff_compression": "none"})
    path = save_image(tmp_path / "plain.tif", image)
    assert _compressions(path) == ["NONE"]
    # Uncompressed: the pixels' bytes and a header, nothing less.
    assert path.stat().st_size >= HEIGHT * WIDTH
    with pytest.raises(ImageWriteError, match="unknown TIFF compression 'jpeg'"):
        save_image(
            tmp_path / "bad.tif",
            ImageFile(pixels, None, "PNG", metadata={"tiff_compression": "jpeg"}),
        )


def test_single_image_loads_as_stack_of_one(tmp_path: Path) -> None:
    pixels = random_pixels(np.uint8, 3)
    stack = load_stack(save_image(tmp_path / "one.png", pixels))
    assert stack.pixels.shape == (1, HEIGHT, WIDTH, 3)
    np.testing.assert_array_equal(stack.pixels[0], pixels)


def test_tiff_pages_of_different_sizes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "mixed.tif"
    with tifffile.TiffWriter(path) as writer:
        writer.write(np.zeros((4, 5), np.uint8))
        writer.write(np.zeros((6, 5), np.uint8))
    with pytest.raises(ImageReadError, match="page 2 is 5x6") as error:
        load_stack(path)
    assert str(error.value).startswith(f"{path}: ")


def test_stack_to_single_image_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageWriteError, match="holds one image, not 3 pages"):
        save_stack(tmp_path / "out.png", random_pixels(np.uint8, 1, pages=3))
    assert list(tmp_path.iterdir()) == []


def test_save_stack_like_keeps_dtype_and_alpha(tmp_path: Path) -> None:
    pages = random_pixels(np.uint16, 3, pages=2)
    alpha = random_pixels(np.uint16, 1, pages=2, seed=4)
    source = save_stack(tmp_path / "in.tif", ImageStack(pages, alpha, "TIFF"))
    stack = load_stack(source)
    result = to_float(stack.pixels) * 0.5
    out = load_stack(save_stack(tmp_path / "out.tif", result, like=stack))
    assert out.pixels.dtype == np.uint16
    np.testing.assert_array_equal(out.pixels, from_float(result, np.uint16))
    np.testing.assert_array_equal(out.alpha, alpha)


def test_encode_stack_round_trips_through_bytes() -> None:
    pages = random_pixels(np.float32, 1, pages=3)
    from tvdenoise.image_io import decode_stack

    np.testing.assert_array_equal(decode_stack(encode_stack(pages, "npy")).pixels, pages)


# --------------------------------------------------------------------------------------------
# JPEG quality and subsampling
# --------------------------------------------------------------------------------------------


def pillow_jpeg(pixels: np.ndarray, **options: object) -> Image.Image:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", **options)
    return Image.open(io.BytesIO(buffer.getvalue()))


def test_jpeg_output_keeps_the_input_quality_and_subsampling(tmp_path: Path) -> None:
    from PIL import JpegImagePlugin

    source = tmp_path / "phone.jpg"
    Image.fromarray(smooth_colour_image()).save(source, quality=70, subsampling=2)
    image = load_image(source)
    assert image.metadata["jpeg_subsampling"] == 2
    output = save_image(tmp_path / "out.jpg", to_float(image.pixels), like=image)
    with Image.open(source) as original, Image.open(output) as written:
        assert written.quantization == original.quantization
        assert JpegImagePlugin.get_sampling(written) == 2


def test_jpeg_output_from_other_formats_is_quality_95_without_subsampling(tmp_path: Path) -> None:
    from PIL import JpegImagePlugin

    pixels = smooth_colour_image()
    output = save_image(tmp_path / "out.jpg", pixels)
    reference = pillow_jpeg(pixels, quality=95)
    with Image.open(output) as written:
        assert written.quantization == reference.quantization
        assert JpegImagePlugin.get_sampling(written) == 0  # 4:4:4


def test_explicit_jpeg_quality_overrides_the_input_tables(tmp_path: Path) -> None:
    source = tmp_path / "phone.jpg"
    Image.fromarray(smooth_colour_image()).save(source, quality=70)
    image = load_image(source)
    output = save_image(tmp_path / "out.jpg", image.pixels, like=image, quality=40)
    reference = pillow_jpeg(image.pixels, quality=40)
    with Image.open(output) as written:
        assert written.quantization == reference.quantization


def test_grey_jpeg_keeps_its_single_table(tmp_path: Path) -> None:
    source = tmp_path / "grey.jpg"
    grey = smooth_colour_image()[..., 0]
    Image.fromarray(grey).save(source, quality=60)
    image = load_image(source)
    output = save_image(tmp_path / "out.jpg", image.pixels, like=image)
    with Image.open(source) as original, Image.open(output) as written:
        assert written.quantization == original.quantization


def test_bad_quality_is_refused(tmp_path: Path) -> None:
    for quality in (0, 101, 9.5, True):
        with pytest.raises(InvalidParameterError, match="quality"):
            save_image(tmp_path / "x.jpg", smooth_colour_image(), quality=quality)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# Precision end to end
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_gradient_keeps_16_bit_precision_through_denoise(
    tmp_path: Path, suffix: str
) -> None:
    rows, columns = np.mgrid[0:64, 0:64]
    ramp = (rows * 64 + columns) * 16 + 3  # 4096 levels, none a multiple of 257
    noise = np.random.default_rng(0).normal(0, 300, ramp.shape)
    pixels = np.clip(ramp + noise, 0, 65535).astype(np.uint16)
    source = save_image(tmp_path / f"scan{suffix}", np.dstack([pixels] * 3))

    image = load_image(source)
    values, span = to_unit_range(image.pixels)
    assert values.dtype == np.float32
    denoised = tvd.denoise(values, weight=0.002)
    output = save_image(
        tmp_path / f"scan_denoised{suffix}", from_unit_range(denoised, span, np.uint16), like=image
    )
    result = load_image(output)

    assert result.pixels.dtype == np.uint16
    levels = np.unique(result.pixels)
    assert len(levels) > 256
    assert np.any(levels % 257 != 0)  # values 8 bits cannot hold
    expected = np.clip(np.rint(denoised.astype(np.float64) * 65535), 0, 65535)
    np.testing.assert_array_equal(result.pixels, expected.astype(np.uint16))


def test_float_tiff_outside_unit_range_is_denoised_in_its_own_range(tmp_path: Path) -> None:
    columns = np.mgrid[0:32, 0:32][1]
    clean = np.where(columns < 16, 1000.0, 3500.0).astype(np.float32)
    noisy = clean + np.random.default_rng(1).normal(0, 200, clean.shape).astype(np.float32)
    assert noisy.min() > 0
    source = save_image(tmp_path / "micro.tif", noisy)

    image = load_image(source)
    values, span = to_unit_range(image.pixels)
    assert span.low == 0.0
    assert span.high == pytest.approx(float(noisy.max()))
    denoised = from_unit_range(tvd.denoise(values, weight=0.05), span, image.pixels.dtype)
    result = load_image(save_image(tmp_path / "micro_denoised.tif", denoised, like=image))

    assert result.pixels.dtype == np.float32
    assert result.pixels.max() > 1000  # not clipped to [0, 1]
    assert np.abs(result.pixels - clean).mean() < 0.5 * np.abs(noisy - clean).mean()


def test_weight_on_unit_range_equals_scaled_weight_on_raw_values() -> None:
    # The ROF scaling law behind to_unit_range: denoise(s f, w s) = s denoise(f, w) for
    # beta = 1, L2. So weight w on the unit range is weight w * s on the raw values.
    rng = np.random.default_rng(2)
    unit = rng.random((16, 16))
    scale = 4000.0
    options = {"tol": 1e-7, "max_iter": 20000}
    on_unit = tvd.denoise(unit, weight=0.1, **options)
    on_raw = tvd.denoise(unit * scale, weight=0.1 * scale, **options)
    np.testing.assert_allclose(on_raw / scale, on_unit, atol=1e-4)
    values, span = to_unit_range(unit * scale)
    np.testing.assert_allclose(values, unit * scale / span.high)


def test_value_range_rules() -> None:
    assert value_range(np.array([0.1, 0.9])) == ValueRange(0.0, 1.0)
    assert value_range(np.array([0, 65535], np.uint16)) == ValueRange(0.0, 1.0)
    assert value_range(np.array([2.0, 10.0])) == ValueRange(0.0, 10.0)
    assert value_range(np.array([-1.0, 0.5])) == ValueRange(-1.0, 1.0)
    with pytest.raises(InvalidParameterError, match="NaN"):
        value_range(np.array([0.0, np.nan]))
    values = np.array([-1.0, 0.0, 0.5, 3.0])
    unit, span = to_unit_range(values)
    np.testing.assert_allclose(unit, (values + 1) / 4)
    np.testing.assert_allclose(from_unit_range(unit, span, np.float64), values)


# --------------------------------------------------------------------------------------------
# Metadata
# --------------------------------------------------------------------------------------------


def jpeg_with_exif(path: Path, orientation: int = 1) -> None:
    image = Image.fromarray(smooth_colour_image())
    exif = image.getexif()
    exif[0x010F] = "Test camera maker"  # Make
    exif[0x0110] = "Model X"  # Model
    exif[0x8298] = "(c) tests"  # Copyright
    if orientation != 1:
        exif[0x0112] = orientation
    image.save(path, exif=exif.tobytes(), quality=90, dpi=(240, 240))


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tif"])
def test_exif_fields_are_carried_from_a_jpeg(tmp_path: Path, suffix: str) -> None:
    source = tmp_path / "camera.jpg"
    jpeg_with_exif(source, orientation=6)
    image = load_image(source)
    output = save_image(tmp_path / f"out{suffix}", to_float(image.pixels), like=image)
    with Image.open(output) as written:
        exif = written.getexif()
        assert exif.get(0x010F) == "Test camera maker"
        assert exif.get(0x0110) == "Model X"
        assert exif.get(0x8298) == "(c) tests"
        assert exif.get(0x0112, 1) == 1  # written upright, not to be turned again
        assert written.size == (48, 64)  # width, height of the upright image


def test_tiff_text_tags_are_carried_to_jpeg(tmp_path: Path) -> None:
    source = tmp_path / "scan.tif"
    tifffile.imwrite(
        source,
        smooth_colour_image(),
        photometric="rgb",
        extratags=[(271, "s", 0, "Scanner Co", True), (33432, "s", 0, "(c) lab", True)],
        metadata=None,
    )
    image = load_image(source)
    output = save_image(tmp_path / "out.jpg", image.pixels, like=image)
    with Image.open(output) as written:
        assert written.getexif().get(271) == "Scanner Co"
        assert written.getexif().get(33432) == "(c) lab"


def test_icc_profile_is_carried_to_webp(tmp_path: Path) -> None:
    profile = b"an ICC profile " * 8
    image = ImageFile(smooth_colour_image(), None, "PNG", metadata={"icc_profile": profile})
    with Image.open(save_image(tmp_path / "out.webp", image)) as written:
        assert written.info["icc_profile"] == profile


@pytest.mark.parametrize("suffix", [".png", ".tif", ".webp", ".npy"])
def test_alpha_is_passed_through_unchanged_after_denoising(tmp_path: Path, suffix: str) -> None:
    dtype = np.uint16 if suffix in (".png", ".tif") else np.uint8
    rgba = random_pixels(dtype, 4)
    image = load_image(save_image(tmp_path / f"in{suffix}", rgba))
    denoised = tvd.denoise(to_float(image.pixels), weight=0.1)
    result = load_image(save_image(tmp_path / f"out{suffix}", denoised, like=image))
    np.testing.assert_array_equal(result.alpha, rgba[..., 3])


def test_bytes_round_trip_for_every_new_format() -> None:
    pixels = random_pixels(np.uint8, 3)
    for image_format in ("WEBP", "GIF", "NPY"):
        decoded = decode_image(encode_image(pixels, image_format))
        assert decoded.format == image_format
        np.testing.assert_array_equal(decoded.pixels, pixels)
