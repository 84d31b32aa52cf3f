"""Bad input and failing outputs: each gives one clear error line, and nothing is lost.

For every case: the project's own error type, one line that starts with the file's path and
says why, the input file byte-for-byte unchanged, and no partial output or temporary file
left in the folder.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

import tvdenoise as tvd
from tvdenoise.errors import ImageReadError, ImageWriteError, TVDenoiseError
from tvdenoise.image_io import (
    DEFAULT_MAX_PIXELS,
    TEMP_NAME_PATTERN,
    clean_stale_temps,
    load_image,
    load_stack,
    save_image,
    to_float,
)
from tvdenoise.io import read as io_read

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listing(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def fails_cleanly(
    action: Callable[[], object],
    error_type: type[TVDenoiseError],
    path: Path,
    reason: str | tuple[str, ...],
    *,
    input_file: Path | None = None,
) -> str:
    """Run ``action``; check the error, the untouched input and the unchanged folder."""
    folder = path.parent
    before = listing(folder)
    checksum = digest(input_file) if input_file is not None else None
    with pytest.raises(error_type) as caught:
        action()
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    reasons = (reason,) if isinstance(reason, str) else reason
    assert any(text in message for text in reasons), message
    assert "\n" not in message
    assert "Traceback" not in message
    assert listing(folder) == before
    if input_file is not None:
        assert digest(input_file) == checksum
    return message


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def photo() -> np.ndarray:
    rows, columns = np.mgrid[0:48, 0:64]
    return np.stack([rows * 5, columns * 4, (rows + columns) * 2], axis=-1).astype(np.uint8)


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload))
    )


def bomb_png(width: int, height: int) -> bytes:
    """A small PNG whose header claims width x height grey pixels, all zero; the data is
    a zlib stream of the first rows only (decoding it all would take width x height bytes)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (width + 1) * 64, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", rows)
        + png_chunk(b"IEND", b"")
    )


# --------------------------------------------------------------------------------------------
# Unreadable inputs
# --------------------------------------------------------------------------------------------


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.touch()
    fails_cleanly(lambda: load_image(path), ImageReadError, path, "empty file", input_file=path)


@pytest.mark.parametrize(("suffix", "encode"), [(".png", png_bytes), (".jpg", jpeg_bytes)])
@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9])
def test_truncated_download(tmp_path: Path, suffix: str, encode: Callable, keep: float) -> None:
    data = encode(photo())
    path = tmp_path / f"download{suffix}"
    path.write_bytes(data[: int(len(data) * keep)])
    fails_cleanly(
        lambda: load_image(path), ImageReadError, path, "truncated or corrupt", input_file=path
    )


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif", ".bmp", ".webp", ".gif", ".npy"])
def test_random_bytes_with_an_image_extension(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"noise{suffix}"
    path.write_bytes(np.random.default_rng(3).bytes(2000))
    fails_cleanly(lambda: load_image(path), ImageReadError, path, "cannot decode", input_file=path)


@pytest.mark.parametrize(
    "magic",
    [
        b"\x89PNG\r\n\x1a\n",
        b"\xff\xd8\xff",
        b"II*\x00",
        b"BM",
        b"GIF89a",
        b"RIFF\x00\x00\x00\x00WEBP",
        b"\x93NUMPY",
    ],
)
def test_right_magic_number_then_garbage(tmp_path: Path, magic: bytes) -> None:
    path = tmp_path / "fake.img"
    path.write_bytes(magic + np.random.default_rng(4).bytes(500))
    # A garbage GIF header may claim billions of pixels: then the size guard speaks first.
    reasons = ("cannot decode", "too large")
    fails_cleanly(lambda: load_image(path), ImageReadError, path, reasons, input_file=path)


def test_text_file_with_image_extension(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("These are my notes, not a picture.\nSecond line.\n")
    fails_cleanly(lambda: load_image(path), ImageReadError, path, "holds text", input_file=path)


def test_directory_where_a_file_is_expected(tmp_path: Path) -> None:
    path = tmp_path / "album.jpg"
    path.mkdir()
    fails_cleanly(lambda: load_image(path), ImageReadError, path, "is a directory")
    fails_cleanly(lambda: load_stack(path), ImageReadError, path, "is a directory")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "gone.png"
    fails_cleanly(lambda: load_image(path), ImageReadError, path, "no such file")


@pytest.mark.skipif(IS_ROOT, reason="root reads files whatever their permissions")
def test_unreadable_permissions(tmp_path: Path) -> None:
    path = tmp_path / "secret.png"
    path.write_bytes(png_bytes(photo()))
    path.chmod(0)
    try:
        fails_cleanly(lambda: load_image(path), ImageReadError, path, "permission denied")
    finally:
        path.chmod(0o644)


def test_unreadable_permissions_simulated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # What open() raises for a chmod 000 file when not root, so the test also runs as root.
    path = tmp_path / "secret.png"
    path.write_bytes(png_bytes(photo()))

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(io_read, "open", refuse, raising=False)
    fails_cleanly(
        lambda: load_image(path), ImageReadError, path, "permission denied", input_file=path
    )


# --------------------------------------------------------------------------------------------
# Decompression bombs
# --------------------------------------------------------------------------------------------


def test_png_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png(30000, 30000))  # 900 megapixels claimed
    assert path.stat().st_size < 10_000
    message = fails_cleanly(
        lambda: load_image(path), ImageReadError, path, "too large", input_file=path
    )
    assert "900,000,000 pixels" in message
    assert f"{DEFAULT_MAX_PIXELS:,}" in message


@pytest.mark.parametrize("suffix", [".png", ".tif", ".jpg", ".gif", ".npy"])
def test_max_pixels_is_enforced_for_every_format(tmp_path: Path, suffix: str) -> None:
    path = save_image(tmp_path / f"small{suffix}", photo())  # 64 x 48 = 3072 pixels
    fails_cleanly(
        lambda: load_image(path, max_pixels=3071),
        ImageReadError,
        path,
        "above the limit of 3,071",
        input_file=path,
    )
    assert load_image(path, max_pixels=3072).pixels.shape[:2] == (48, 64)


def test_stack_limit_counts_every_page(tmp_path: Path) -> None:
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.zeros((5, 10, 10), np.uint8), photometric="minisblack")
    fails_cleanly(
        lambda: load_stack(path, max_pixels=499), ImageReadError, path, "5 pages of 10x10"
    )
    assert load_stack(path, max_pixels=500).pages == 5


def test_npy_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    path = tmp_path / "huge.npy"
    with open(path, "wb") as stream:
        np.lib.format.write_array_header_1_0(
            stream, {"descr": "<f4", "fortran_order": False, "shape": (100_000, 100_000)}
        )
    fails_cleanly(lambda: load_image(path), ImageReadError, path, "too large", input_file=path)


def test_a_higher_limit_than_pillows_is_honoured(tmp_path: Path) -> None:
    # 182 megapixels: above Pillow's own hard limit. With max_pixels=None our limit decides,
    # so the file gets as far as decoding, and fails there: its pixel data are cut short.
    from PIL import Image as PILImage

    limit_before = PILImage.MAX_IMAGE_PIXELS
    data = bomb_png(14000, 13000)
    path = tmp_path / "big.png"
    path.write_bytes(data[:60] + data[-12:])  # IDAT cut, IEND kept
    fails_cleanly(lambda: load_image(path), ImageReadError, path, "182,000,000 pixels")
    fails_cleanly(lambda: load_image(path, max_pixels=None), ImageReadError, path, "cannot decode")
    assert limit_before == PILImage.MAX_IMAGE_PIXELS


def test_bad_max_pixels_is_a_parameter_error(tmp_path: Path) -> None:
    path = save_image(tmp_path / "x.png", photo())
    for bad in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match="max_pixels"):
            load_image(path, max_pixels=bad)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# NaN and infinity
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_float_tiff_with_nan_or_inf_is_refused(tmp_path: Path, bad_value: float) -> None:
    values = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    values[3, 4] = bad_value
    path = tmp_path / "broken.tif"
    tifffile.imwrite(path, values)
    message = fails_cleanly(lambda: load_image(path), ImageReadError, path, "NaN", input_file=path)
    expected = "1 NaN and 0 infinite" if np.isnan(bad_value) else "0 NaN and 1 infinite"
    assert expected in message


def test_npy_stack_with_nan_is_refused(tmp_path: Path) -> None:
    values = np.zeros((3, 4, 4), np.float64)
    values[2, 0, 0] = np.nan
    path = tmp_path / "broken.npy"
    np.save(path, values)
    fails_cleanly(lambda: load_stack(path), ImageReadError, path, "1 NaN", input_file=path)


# --------------------------------------------------------------------------------------------
# Tiny images
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (1, 1, 3), (1, 9, 3), (9, 1, 3)])
@pytest.mark.parametrize("suffix", [".png", ".tif", ".jpg", ".bmp", ".webp", ".gif", ".npy"])
def test_one_pixel_and_one_row_images_load_denoise_and_save(
    tmp_path: Path, shape: tuple[int, ...], suffix: str
) -> None:
    pixels = np.random.default_rng(5).integers(0, 256, shape, dtype=np.uint8)
    image = load_image(save_image(tmp_path / f"tiny{suffix}", pixels))
    denoised = tvd.denoise(to_float(image.pixels), weight=0.1)
    assert np.all(np.isfinite(denoised))
    assert denoised.shape == image.pixels.shape
    result = load_image(save_image(tmp_path / f"tiny_out{suffix}", denoised, like=image))
    assert result.pixels.shape[:2] == shape[:2]


def test_one_pixel_is_its_own_minimiser() -> None:
    # TV of a single pixel is 0, so the minimiser of 1/2 (u - f)^2 is f itself.
    value = np.array([[0.3]])
    np.testing.assert_allclose(tvd.denoise(value, weight=0.5), value, atol=1e-6)


# --------------------------------------------------------------------------------------------
# Outputs that cannot be written
# --------------------------------------------------------------------------------------------


@pytest.mark.skipif(IS_ROOT, reason="root writes into read-only folders")
def test_output_folder_without_write_permission(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        path = folder / "out.png"
        fails_cleanly(lambda: save_image(path, photo()), ImageWriteError, path, "permission")
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (errno.EACCES, "permission denied"),
        (errno.EROFS, "read-only file system"),
        (errno.ENOSPC, "no space left on device"),
        (errno.EDQUOT, "Disk quota exceeded"),
    ],
)
def test_output_folder_that_cannot_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, reason: str
) -> None:
    real_open = os.open

    def refuse(path: object, flags: int, *args: object) -> int:
        if flags & os.O_CREAT:
            error_type = PermissionError if code == errno.EACCES else OSError
            raise error_type(code, os.strerror(code))
        return real_open(path, flags, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", refuse)
    path = tmp_path / "out.png"
    fails_cleanly(lambda: save_image(path, photo()), ImageWriteError, path, reason)


class FailingStream(io.BufferedWriter):
    """A file object that writes half of what it is given, then fails like a full disk."""

    def __init__(self, raw: io.FileIO, failure: BaseException) -> None:
        super().__init__(raw)
        self.failure = failure

    def write(self, data: bytes) -> int:  # type: ignore[override]
        super().write(bytes(data)[: len(data) // 2])
        self.flush()
        raise self.failure


def patch_disk(monkeypatch: pytest.MonkeyPatch, failure: BaseException) -> None:
    def failing_fdopen(descriptor: int, mode: str = "rb", *args: object) -> FailingStream:
        return FailingStream(io.FileIO(descriptor, "wb"), failure)

    monkeypatch.setattr(os, "fdopen", failing_fdopen)


def test_full_disk_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    patch_disk(monkeypatch, OSError(errno.ENOSPC, "No space left on device"))
    path = tmp_path / "out.tif"
    fails_cleanly(lambda: save_image(path, photo()), ImageWriteError, path, "no space left")


def test_full_disk_keeps_the_old_file_when_overwriting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save_image(tmp_path / "out.png", photo())
    checksum = digest(path)
    patch_disk(monkeypatch, OSError(errno.ENOSPC, "No space left on device"))
    fails_cleanly(
        lambda: save_image(path, photo() // 2, overwrite=True),
        ImageWriteError,
        path,
        "no space left",
    )
    assert digest(path) == checksum


def test_interrupt_during_write_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    patch_disk(monkeypatch, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        save_image(tmp_path / "out.png", photo())
    assert listing(tmp_path) == []


def test_input_is_never_touched_when_output_is_the_input(tmp_path: Path) -> None:
    path = save_image(tmp_path / "photo.png", photo())
    fails_cleanly(
        lambda: save_image(path, photo() // 2), ImageWriteError, path, "exists", input_file=path
    )


# --------------------------------------------------------------------------------------------
# Clean-up after kill -9
# --------------------------------------------------------------------------------------------


def test_clean_stale_temps_removes_only_our_temporary_files(tmp_path: Path) -> None:
    stale = tmp_path / ".frame.png.tvdenoise-0123abcd.tmp"
    stale.write_bytes(b"half an image")
    nested = tmp_path / "sub" / ".x.tif.tvdenoise-deadbeef.tmp"
    nested.parent.mkdir()
    nested.write_bytes(b"half")
    keep = [
        tmp_path / ".hidden.tmp",
        tmp_path / "frame.png",
        tmp_path / ".frame.png.tvdenoise-xyz.tmp",  # not 8 hex digits
        tmp_path / "frame.png.tvdenoise-0123abcd.tmp",  # not hidden
    ]
    for path in keep:
        path.write_bytes(b"keep")

    assert clean_stale_temps(tmp_path) == [stale]
    assert clean_stale_temps(tmp_path, recursive=True) == [nested]
    assert all(path.exists() for path in keep)


def test_clean_stale_temps_spares_recent_files(tmp_path: Path) -> None:
    old = tmp_path / ".a.png.tvdenoise-00000000.tmp"
    new = tmp_path / ".b.png.tvdenoise-11111111.tmp"
    old.write_bytes(b"")
    new.write_bytes(b"")
    an_hour_ago = old.stat().st_mtime - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    assert clean_stale_temps(tmp_path, older_than=600) == [old]
    assert new.exists()


def test_clean_stale_temps_for_named_targets_spares_other_writers(tmp_path: Path) -> None:
    ours = tmp_path / ".a.png.tvdenoise-00000000.tmp"
    theirs = tmp_path / ".b.png.tvdenoise-11111111.tmp"
    ours.write_bytes(b"")
    theirs.write_bytes(b"")
    assert clean_stale_temps(tmp_path, targets={"a.png"}) == [ours]
    assert theirs.exists()


def test_clean_stale_temps_not_strict_skips_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageWriteError, match="no such folder"):
        clean_stale_temps(tmp_path / "gone")
    assert clean_stale_temps(tmp_path / "gone", strict=False) == []


def test_a_run_removes_only_its_own_targets_temporaries(tmp_path: Path) -> None:
    from tvdenoise.batch import remove_stale_temps
    from tvdenoise.planning import Job

    ours = tmp_path / ".a.png.tvdenoise-00000000.tmp"
    theirs = tmp_path / ".b.png.tvdenoise-11111111.tmp"
    ours.write_bytes(b"")
    theirs.write_bytes(b"")
    jobs = [Job(source=tmp_path / "in.png", target=tmp_path / "a.png")]
    assert remove_stale_temps(jobs) == 1
    assert not ours.exists() and theirs.exists()
    missing = [Job(source=tmp_path / "in.png", target=tmp_path / "gone" / "a.png")]
    assert remove_stale_temps(missing) == 0


def test_temporary_names_match_the_documented_pattern(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    real_link = os.link

    def spy(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
        seen.append(Path(source).name)
        real_link(source, target)

    monkeypatch.setattr(os, "link", spy)
    save_image(tmp_path / "frame 01.png", photo())
    assert len(seen) == 1
    match = TEMP_NAME_PATTERN.match(seen[0])
    assert match is not None
    assert match.group("target") == "frame 01.png"
    assert listing(tmp_path) == ["frame 01.png"]
