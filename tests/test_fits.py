"""FITS frames and cubes (tvdenoise.io.fits, the astro extra): values, dtypes, header, NaN.

Reference files are written with astropy itself, the independent implementation; the tests
that need it skip cleanly without it. The missing-extra message is tested either way.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest

from tvdenoise.errors import ImageReadError, ImageWriteError
from tvdenoise.image_io import (
    ImageFile,
    decode_image,
    decode_stack,
    encode_image,
    encode_stack,
    load_image,
    load_stack,
    save_image,
    save_stack,
)

RNG = np.random.default_rng(0)


def fits_bytes(data: np.ndarray, **keywords: object) -> bytes:
    fits = pytest.importorskip("astropy.io.fits")
    hdu = fits.PrimaryHDU(data)
    for key, value in keywords.items():
        hdu.header[key] = value
    buffer = io.BytesIO()
    hdu.writeto(buffer)
    return buffer.getvalue()


def read_back(data: bytes, *, raw: bool = False) -> tuple[np.ndarray, object]:
    fits = pytest.importorskip("astropy.io.fits")
    with fits.open(io.BytesIO(data), do_not_scale_image_data=raw) as hdus:
        return np.array(hdus[0].data), hdus[0].header.copy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_frame_keeps_values_dtype_header_and_nan(dtype: type) -> None:
    pixels = RNG.normal(100.0, 20.0, (9, 11)).astype(dtype)  # far outside [0, 1]
    pixels[2, 3] = np.nan  # a pixel without data
    image = decode_image(fits_bytes(pixels, OBJECT="M31", EXPTIME=30.0), "frame.fits")
    assert image.format == "FITS" and image.pixels.dtype == dtype
    np.testing.assert_array_equal(image.pixels, pixels)  # NaN where NaN
    image.metadata["history"] = ["tvdenoise: denoised (test)"]
    values, header = read_back(encode_image(image, "fits"))
    assert values.dtype == np.dtype(dtype).newbyteorder(">")
    np.testing.assert_array_equal(values, pixels)
    assert header["OBJECT"] == "M31" and header["EXPTIME"] == 30.0
    assert "tvdenoise: denoised (test)" in str(header["HISTORY"])


def test_unsigned_16_bit_through_bzero_is_kept() -> None:
    pixels = RNG.integers(0, 65536, (6, 8), dtype=np.uint16)
    image = decode_image(fits_bytes(pixels))
    assert image.pixels.dtype == np.uint16
    np.testing.assert_array_equal(image.pixels, pixels)
    raw, header = read_back(encode_image(image, "fits"), raw=True)
    assert (header["BITPIX"], header["BZERO"]) == (16, 32768)
    np.testing.assert_array_equal(raw.astype(np.int64) + 32768, pixels)


def test_scaled_integers_read_as_physical_values_and_written_back_scaled() -> None:
    raw = RNG.integers(-1000, 1000, (5, 7)).astype(np.int16)
    image = decode_image(fits_bytes(raw, BSCALE=0.5, BZERO=100.0))
    assert image.pixels.dtype == np.float32
    np.testing.assert_array_equal(image.pixels, raw * 0.5 + 100.0)
    stored, header = read_back(encode_image(image, "fits"), raw=True)
    assert (header["BITPIX"], header["BSCALE"], header["BZERO"]) == (16, 0.5, 100.0)
    np.testing.assert_array_equal(stored, raw)


def test_cube_is_a_stack_and_round_trips(tmp_path: Path) -> None:
    cube = RNG.random((4, 6, 5)).astype(np.float32)
    path = tmp_path / "cube.fits"
    path.write_bytes(fits_bytes(cube, TELESCOP="test"))
    stack = load_stack(path)
    assert stack.pages == 4 and stack.pixels.dtype == np.float32
    np.testing.assert_array_equal(stack.pixels, cube)
    with pytest.raises(ImageReadError, match=r"cube.fits: FITS cube \(4 planes\)"):
        load_image(path)
    out = save_stack(tmp_path / "out.fits", stack.pixels + 1, like=stack)
    values, header = read_back(out.read_bytes())
    np.testing.assert_array_equal(values, cube + 1)
    assert header["TELESCOP"] == "test"


def test_rgb_is_a_three_plane_cube_marked_rgb() -> None:
    pytest.importorskip("astropy")
    rgb = RNG.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    data = encode_image(rgb, "fits")
    values, header = read_back(data)
    assert values.shape == (3, 4, 5) and header["CTYPE3"] == "RGB"
    np.testing.assert_array_equal(decode_image(data).pixels, rgb)
    assert decode_stack(data).pages == 1


def test_other_float_formats_refuse_nan_unless_asked(tmp_path: Path) -> None:
    pixels = np.full((4, 4), 0.5, np.float32)
    pixels[1, 1] = np.nan
    path = save_image(tmp_path / "nan.tif", ImageFile(pixels, None, "TIFF"))
    with pytest.raises(ImageReadError, match="1 NaN"):
        load_image(path)
    assert np.isnan(load_image(path, allow_nan=True).pixels[1, 1])
    pixels[2, 2] = np.inf
    path = save_image(tmp_path / "inf.npy", pixels)
    with pytest.raises(ImageReadError, match="1 infinite"):
        load_image(path, allow_nan=True)


@pytest.mark.parametrize("cut", ["header", "data", "garbage"])
def test_truncated_or_corrupt_fits_is_one_line_naming_the_file(cut: str) -> None:
    data = fits_bytes(RNG.random((40, 40)).astype(np.float32))
    broken = {
        "header": data[:1000],
        "data": data[: len(data) - 2880],
        "garbage": data[:2880] + b"\x00garbage" * 10,
    }[cut]
    with pytest.raises(ImageReadError) as error:
        decode_stack(broken, "broken.fits")
    message = str(error.value)
    assert message.startswith("broken.fits: cannot decode FITS image") and "\n" not in message


def test_max_pixels_is_checked_from_the_header() -> None:
    data = fits_bytes(np.zeros((3, 20, 20), np.float32))
    with pytest.raises(ImageReadError, match="too large: 3 pages of 20x20"):
        decode_stack(data, "big.fits", max_pixels=1000)


def test_missing_astropy_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "astropy.io.fits", None)  # import fails as if absent
    data = b"SIMPLE  =                    T" + b" " * 2850
    with pytest.raises(ImageReadError) as error:
        decode_image(data, "frame.fits")
    assert str(error.value) == (
        "frame.fits: reading and writing FITS needs astropy (pip install 'tvdenoise[astro]')"
    )
    with pytest.raises(ImageWriteError) as write_error:
        encode_stack(np.zeros((2, 3, 3), np.float32), "fits", name="cube.fits")
    assert str(write_error.value) == (
        "cube.fits: reading and writing FITS needs astropy (pip install 'tvdenoise[astro]')"
    )


# --------------------------------------------------------------------------------------------
# The command line: NaN pixels masked out of the data term, kept NaN, a batch that goes on
# --------------------------------------------------------------------------------------------


def noisy_frame(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A two-level frame in counts (1000 | 3000) and a noisy copy with NaN borders."""
    clean = np.full((24, 30), 1000.0, np.float32)
    clean[:, 15:] = 3000.0
    noisy = clean + np.random.default_rng(seed).normal(0, 150, clean.shape).astype(np.float32)
    noisy[:3] = np.nan  # a border masked after registration
    noisy[12, 5] = np.nan  # a bad pixel
    return clean, noisy


def test_cli_denoises_a_fits_frame_keeping_nan_dtype_and_header(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tvdenoise.cli import app

    clean, noisy = noisy_frame()
    (tmp_path / "frame.fits").write_bytes(fits_bytes(noisy, OBJECT="M31"))
    result = CliRunner().invoke(app, [str(tmp_path / "frame.fits"), "--weight", "0.05"])
    assert result.exit_code == 0, result.output
    values, header = read_back((tmp_path / "frame_denoised.fits").read_bytes())
    assert values.dtype == np.dtype(">f4")
    np.testing.assert_array_equal(np.isnan(values), np.isnan(noisy))
    assert header["OBJECT"] == "M31" and "weight 0.05" in str(header["HISTORY"])
    valid = ~np.isnan(noisy)
    # Denoised in counts, and the bad pixel's neighbours are not pulled towards NaN or 0.
    assert np.abs(values - clean)[valid].mean() < 0.5 * np.abs(noisy - clean)[valid].mean()
    assert np.abs(values[11:14, 4:7][valid[11:14, 4:7]] - 1000).max() < 200


def test_cli_mask_option_for_other_float_formats(tmp_path: Path) -> None:
    from PIL import Image
    from typer.testing import CliRunner

    from tvdenoise.cli import app

    runner = CliRunner()
    _, noisy = noisy_frame(1)
    np.save(tmp_path / "frame.npy", noisy)
    refused = runner.invoke(app, [str(tmp_path / "frame.npy"), "--weight", "0.05"])
    assert refused.exit_code == 1 and "--mask nan" in refused.stderr
    masked = runner.invoke(app, [str(tmp_path / "frame.npy"), "--weight", "0.05", "--mask", "nan"])
    assert masked.exit_code == 0, masked.output
    out = np.load(tmp_path / "frame_denoised.npy")
    np.testing.assert_array_equal(np.isnan(out), np.isnan(noisy))
    # A mask image: black leaves the spoiled block out of the data term.
    spoiled = np.nan_to_num(noisy, nan=1000.0)
    spoiled[16:20, 20:24] = 0.0
    np.save(tmp_path / "spoiled.npy", spoiled)
    mask = np.full(spoiled.shape, 255, np.uint8)
    mask[16:20, 20:24] = 0
    Image.fromarray(mask).save(tmp_path / "mask.png")
    args = [str(tmp_path / "spoiled.npy"), "--weight", "0.05", "--mask", str(tmp_path / "mask.png")]
    assert runner.invoke(app, args).exit_code == 0
    filled = np.load(tmp_path / "spoiled_denoised.npy")
    assert np.abs(filled[16:20, 20:24] - 3000).max() < 300
    small = tmp_path / "small.png"
    Image.fromarray(mask[:5, :5]).save(small)
    wrong = runner.invoke(app, [str(tmp_path / "spoiled.npy"), "--mask", str(small), "--overwrite"])
    assert wrong.exit_code == 1 and "the mask is 5x5, the image 30x24" in wrong.stderr


def test_cli_broken_fits_fails_alone(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tvdenoise.cli import app

    _, noisy = noisy_frame()
    good = fits_bytes(noisy)
    (tmp_path / "good.fits").write_bytes(good)
    (tmp_path / "cut.fits").write_bytes(good[: len(good) - 2000])
    result = CliRunner().invoke(app, [str(tmp_path), "--weight", "0.05", "-o", str(tmp_path / "o")])
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if "cut.fits" in line]
    assert len(errors) == 1 and "truncated" in errors[0]
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["good_denoised.fits"]


def test_cli_batch_size_solves_frames_with_nan_alone(tmp_path: Path) -> None:
    # Same-size frames batched together would carry NaN into the solve: NaN frames are solved
    # one by one, masked, and a --mask run is not batched (the mask applies to every image).
    from typer.testing import CliRunner

    from tvdenoise.cli import app

    clean, noisy = noisy_frame()
    for index in range(2):
        (tmp_path / f"f{index}.fits").write_bytes(fits_bytes(noisy_frame(index)[1]))
    args = [str(tmp_path / "f0.fits"), str(tmp_path / "f1.fits"), "--weight", "0.05"]
    result = CliRunner().invoke(app, [*args, "--batch-size", "2", "-o", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    for index in range(2):
        values, _ = read_back((tmp_path / "o" / f"f{index}_denoised.fits").read_bytes())
        np.testing.assert_array_equal(np.isnan(values), np.isnan(noisy))
        valid = ~np.isnan(noisy)
        assert np.abs(values - clean)[valid].mean() < 0.5 * np.abs(noisy - clean)[valid].mean()
