"""Issue 6 on the command line: precision, float ranges, stacks, quality, size limit, bad
input in a batch, and kill -9 at random moments."""

from __future__ import annotations

import errno
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image
from typer.testing import CliRunner

from tvdenoise import config, image_io
from tvdenoise.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def _noisy(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    clean = np.zeros(shape)
    clean[..., shape[-1] // 3 :] = 0.7
    return np.clip(clean + 0.15 + 0.08 * rng.standard_normal(shape), 0, 1)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _temps(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if image_io.TEMP_NAME_PATTERN.match(p.name)]


def test_default_max_pixels_matches_the_reader() -> None:
    assert config.DEFAULT_MAX_PIXELS == image_io.DEFAULT_MAX_PIXELS


def test_sixteen_bit_gradient_keeps_its_precision(tmp_path: Path) -> None:
    ramp = np.tile(np.linspace(0, 65535, 300), (40, 1)).astype(np.uint16)
    noisy = np.clip(ramp + np.random.default_rng(0).normal(0, 300, ramp.shape), 0, 65535)
    source = tmp_path / "ramp.tif"
    tifffile.imwrite(source, noisy.astype(np.uint16))
    result = runner.invoke(app, [str(source), "--weight", "0.01", "-q"])
    assert result.exit_code == 0, result.output
    out = tifffile.imread(tmp_path / "ramp_denoised.tif")
    assert out.dtype == np.uint16
    assert len(np.unique(out)) > 256  # not rounded to 8 bits anywhere
    assert np.abs(out.astype(float) - ramp).mean() < np.abs(noisy - ramp).mean()


def test_float_images_are_denoised_in_their_own_range(tmp_path: Path) -> None:
    import tvdenoise

    image = (_noisy((32, 32)) * 1000 - 200).astype(np.float32)  # about [-200, 800]
    tifffile.imwrite(tmp_path / "big.tif", image)
    result = runner.invoke(app, [str(tmp_path / "big.tif"), "--weight", "0.1", "-q"])
    assert result.exit_code == 0, result.output
    out = tifffile.imread(tmp_path / "big_denoised.tif")
    assert out.dtype == np.float32
    # As documented: mapped from [min(0, lowest), max(1, highest)] to [0, 1], denoised with
    # the weight's usual meaning, mapped back; never clipped to [0, 1].
    low, high = min(0.0, float(image.min())), max(1.0, float(image.max()))
    unit = tvdenoise.denoise((image - low) / (high - low), weight=0.1)
    expected = unit * (high - low) + low
    assert np.abs(out - expected).max() < 1e-3 * (high - low)
    assert out.min() < -20 and out.max() > 500


def test_quality_changes_jpeg_size(tmp_path: Path) -> None:
    source = tmp_path / "photo.png"
    Image.fromarray((_noisy((64, 64, 3)) * 255).astype(np.uint8)).save(source)
    sizes = {}
    for quality in (30, 95):
        out = tmp_path / f"q{quality}.jpg"
        result = runner.invoke(app, [str(source), "-o", str(out), "--quality", str(quality)])
        assert result.exit_code == 0, result.output
        sizes[quality] = out.stat().st_size
    assert sizes[30] < sizes[95]
    bad = runner.invoke(app, [str(source), "--quality", "101"])
    assert bad.exit_code == 2 and "--quality" in bad.stderr


def test_max_pixels_guard(tmp_path: Path) -> None:
    source = tmp_path / "big.png"
    Image.fromarray((_noisy((40, 50)) * 255).astype(np.uint8)).save(source)
    result = runner.invoke(app, [str(source), "--max-pixels", "1000"])
    assert result.exit_code == 1
    assert "too large" in result.stderr and str(source) in result.stderr
    assert runner.invoke(app, [str(source), "--max-pixels", "0", "-q"]).exit_code == 0


def test_stack_frames_denoises_each_page_like_a_single_image(tmp_path: Path) -> None:
    pages = (np.stack([_noisy((24, 24), seed) for seed in range(3)]) * 255).astype(np.uint8)
    source = tmp_path / "stack.tif"
    with tifffile.TiffWriter(source) as writer:
        for page in pages:
            writer.write(page, photometric="minisblack")
    refused = runner.invoke(app, [str(source)])
    assert refused.exit_code == 1 and "--stack" in refused.stderr
    result = runner.invoke(app, [str(source), "--stack", "frames", "-q"])
    assert result.exit_code == 0, result.output
    out = tifffile.imread(tmp_path / "stack_denoised.tif")
    assert out.shape == pages.shape
    Image.fromarray(pages[1]).save(tmp_path / "page1.png")
    assert runner.invoke(app, [str(tmp_path / "page1.png"), "-q"]).exit_code == 0
    single = np.asarray(Image.open(tmp_path / "page1_denoised.png"))
    assert np.array_equal(out[1], single)


def test_all_frames_of_a_gif(tmp_path: Path) -> None:
    frames = [Image.fromarray((_noisy((20, 20), s) * 255).astype(np.uint8)) for s in range(3)]
    source = tmp_path / "anim.gif"
    frames[0].save(source, save_all=True, append_images=frames[1:], duration=100)
    result = runner.invoke(app, [str(source), "--all-frames", "-q"])
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "anim_denoised.gif") as out:
        assert out.n_frames == 3


def test_bad_inputs_in_a_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    good = folder / "good.png"
    Image.fromarray((_noisy((16, 16)) * 255).astype(np.uint8)).save(good)
    png = good.read_bytes()
    (folder / "empty.png").write_bytes(b"")
    (folder / "truncated.png").write_bytes(png[: len(png) // 2])
    (folder / "noise.jpg").write_bytes(os.urandom(500))
    (folder / "text.tif").write_text("hello, not an image\n")
    Image.fromarray(np.array([[7]], np.uint8)).save(folder / "one.png")
    Image.fromarray(np.arange(9, dtype=np.uint8)[None]).save(folder / "row.png")
    sums = {p.name: _sha(p) for p in folder.iterdir()}
    out = tmp_path / "out"
    result = runner.invoke(app, [str(folder), "-o", str(out), "--json", "--weight", "0.1"])
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 4
    for name in ("empty.png", "truncated.png", "noise.jpg", "text.tif"):
        assert sum(name in line for line in errors) == 1
    assert sorted(p.name for p in out.iterdir()) == [
        "good_denoised.png",
        "one_denoised.png",
        "row_denoised.png",
    ]
    assert {p.name: _sha(p) for p in folder.iterdir()} == sums  # inputs untouched
    assert _temps(tmp_path) == []
    # Too small to estimate the noise: --weight auto (the default) says what to give instead.
    tiny = runner.invoke(app, [str(folder / "one.png"), "-o", str(tmp_path / "tiny.png")])
    assert tiny.exit_code == 1 and "16x16" in tiny.stderr and "fixed weight" in tiny.stderr


def test_unwritable_output_folder_and_full_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "a.png"
    Image.fromarray((_noisy((16, 16)) * 255).astype(np.uint8)).save(source)
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    result = runner.invoke(app, [str(source), "-o", str(blocker / "out") + "/"])
    assert result.exit_code == 1 and "cannot create folder" in result.stderr

    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    result = runner.invoke(app, [str(source), "-o", str(tmp_path / "out.png")])
    assert result.exit_code == 1 and "no space left on device" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.png").exists() and _temps(tmp_path) == []


@pytest.mark.slow
def test_kill_9_at_random_moments_never_leaves_a_bad_output(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(6):
        Image.fromarray((_noisy((48, 48), i) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "tvdenoise", str(folder), "-q"]
    reference = tmp_path / "reference"
    subprocess.run([*command, "-o", str(reference)], check=True, env=env, timeout=300)
    expected = {p.name: np.asarray(Image.open(p)) for p in reference.iterdir()}
    out = tmp_path / "out"
    rng = random.Random(0)
    for _ in range(20):
        process = subprocess.Popen(
            [*command, "-o", str(out), "--skip-existing", "--tol", "1e-6"], env=env
        )
        time.sleep(rng.uniform(0.2, 2.0))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        for path in out.glob("*.png") if out.exists() else []:
            with Image.open(path) as image:
                image.load()  # decodes completely
    # The killed runs used --tol 1e-6 (longer solves): compare the final set to a run with the
    # same settings, after a clean --skip-existing run completes it.
    subprocess.run(
        [*command, "-o", str(out), "--skip-existing", "--tol", "1e-6"],
        check=True,
        env=env,
        timeout=300,
    )
    strict = tmp_path / "strict"
    subprocess.run([*command, "-o", str(strict), "--tol", "1e-6"], check=True, env=env, timeout=300)
    assert sorted(p.name for p in out.iterdir()) == sorted(expected)
    for path in out.iterdir():
        assert np.array_equal(
            np.asarray(Image.open(path)), np.asarray(Image.open(strict / path.name))
        )
    assert _temps(out) == []  # stale temporaries of killed writes were cleaned up


def test_stack_volume_uses_3d_tv(tmp_path: Path) -> None:
    import tvdenoise

    rng = np.random.default_rng(3)
    clean = np.zeros((6, 24, 24))
    clean[:, 6:18, 6:18] = 0.8
    pages = (np.clip(clean + 0.1 * rng.standard_normal(clean.shape), 0, 1) * 255).astype(np.uint8)
    source = tmp_path / "zstack.tif"
    with tifffile.TiffWriter(source) as writer:
        for page in pages:
            writer.write(page, photometric="minisblack")
    refused = runner.invoke(app, [str(source), "--stack", "volume"])
    assert refused.exit_code == 2 and "numeric --weight" in refused.stderr
    result = runner.invoke(app, [str(source), "--stack", "volume", "--weight", "0.1", "-q"])
    assert result.exit_code == 0, result.output
    out = tifffile.imread(tmp_path / "zstack_denoised.tif")
    assert out.shape == pages.shape
    # The same as the library's 3-D solve of the stack (one volume, not page by page).
    volume = tvdenoise.denoise(pages.astype(np.float32) / 255, weight=0.1, volume=True)
    assert np.abs(out.astype(float) - np.round(volume * 255)).max() <= 1
    frames = runner.invoke(
        app, [str(source), "--stack", "frames", "--weight", "0.1", "-o", str(tmp_path / "f.tif")]
    )
    assert frames.exit_code == 0
    assert not np.array_equal(tifffile.imread(tmp_path / "f.tif"), out)  # 3-D differs from 2-D


def test_spacing_reaches_the_solver_and_is_checked(tmp_path: Path) -> None:
    import tvdenoise

    rng = np.random.default_rng(4)
    clean = np.zeros((6, 24, 24))
    clean[1:5, 6:18, 6:18] = 0.8
    pages = (np.clip(clean + 0.1 * rng.standard_normal(clean.shape), 0, 1) * 255).astype(np.uint8)
    source = tmp_path / "zstack.tif"
    with tifffile.TiffWriter(source) as writer:
        for page in pages:
            writer.write(page, photometric="minisblack")
    unit = pages.astype(np.float32) / 255
    # A z-step three times the pixel size weakens the coupling across pages: the output is
    # the library's solve with that spacing, and not the isotropic one.
    out = tmp_path / "spaced.tif"
    args = [str(source), "--stack", "volume", "--weight", "0.1", "-q", "-o", str(out)]
    result = runner.invoke(app, [*args, "--spacing", "3,1,1"])
    assert result.exit_code == 0, result.output
    spaced = tvdenoise.denoise(unit, weight=0.1, volume=True, spacing=(3, 1, 1))
    isotropic = tvdenoise.denoise(unit, weight=0.1, volume=True)
    got = tifffile.imread(out).astype(float)
    assert np.abs(got - np.round(spaced * 255)).max() <= 1
    assert np.abs(got - np.round(isotropic * 255)).max() >= 3
    # The same from a config file, and --show-config writes it back as a TOML array.
    settings = tmp_path / "z.toml"
    settings.write_text('stack = "volume"\nweight = 0.1\nspacing = [3, 1, 1]\n')
    shown = runner.invoke(app, ["--config", str(settings), "--show-config"])
    assert "spacing = [3.0, 1.0, 1.0]" in shown.stdout
    again = tmp_path / "again.tif"
    result = runner.invoke(app, [str(source), "--config", str(settings), "-q", "-o", str(again)])
    assert result.exit_code == 0 and np.array_equal(tifffile.imread(again), got)
    # 2-D images take two steps.
    image = tmp_path / "page.png"
    Image.fromarray(pages[2]).save(image)
    result = runner.invoke(app, [str(image), "--weight", "0.1", "-q", "--spacing", "2,1"])
    assert result.exit_code == 0, result.output
    flat = tvdenoise.denoise(unit[2], weight=0.1, spacing=(2, 1))
    got = np.asarray(Image.open(tmp_path / "page_denoised.png")).astype(float)
    assert np.abs(got - np.round(flat * 255)).max() <= 1
    # Wrong counts and values: one line, exit 2, nothing written.
    for bad, message in (
        (["--spacing", "3,1,1"], "--spacing has 3 steps"),
        (["--stack", "volume", "--spacing", "1,1"], "--spacing has 2 steps"),
        (["--spacing", "0,1"], "--spacing must be 2 (dy, dx) or 3 (dz, dy, dx) positive"),
        (["--spacing", "a,b"], "--spacing must be 2 (dy, dx) or 3"),
    ):
        target = str(tmp_path / "x.tif")
        refused = runner.invoke(app, [str(source), "--weight", "0.1", "-o", target, *bad])
        assert refused.exit_code == 2 and message in refused.stderr, (bad, refused.stderr)
    assert not (tmp_path / "x.tif").exists()


def _compression(path: Path) -> str:
    with tifffile.TiffFile(path) as tiff:
        return tiff.pages[0].compression.name


def test_an_uncompressed_tiff_comes_back_uncompressed(tmp_path: Path) -> None:
    pixels = np.round(_noisy((40, 48, 3)) * 65535).astype(np.uint16)
    tifffile.imwrite(tmp_path / "scan.tif", pixels, photometric="rgb")  # no compression
    result = runner.invoke(app, [str(tmp_path / "scan.tif"), "--weight", "0.05"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "scan_denoised.tif"
    assert _compression(out) == "NONE"
    assert out.stat().st_size >= pixels.nbytes  # every sample stored as it is
    assert tifffile.imread(out).dtype == np.uint16


@pytest.mark.parametrize(
    ("option", "tag"),
    [("none", "NONE"), ("deflate", "ADOBE_DEFLATE"), ("lzw", "LZW"), ("zstd", "ZSTD")],
)
def test_compression_option_sets_the_tiff_compression(
    tmp_path: Path, option: str, tag: str
) -> None:
    pixels = np.round(_noisy((32, 40)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "in.tif", pixels, compression="packbits")
    Image.fromarray(pixels).save(tmp_path / "in.png")
    # Without the option the input TIFF's packbits is kept, and a PNG converted gets deflate.
    for source, kept in (("in.tif", "PACKBITS"), ("in.png", "ADOBE_DEFLATE")):
        kind = Path(source).suffix[1:]
        target, plain = tmp_path / f"{kind}_{option}.tif", tmp_path / f"{kind}_plain.tif"
        command = [str(tmp_path / source), "--weight", "0.1"]
        result = runner.invoke(app, [*command, "-o", str(target), "--compression", option])
        assert result.exit_code == 0, result.output
        assert _compression(target) == tag
        alone = runner.invoke(app, [*command, "-o", str(plain)])
        assert alone.exit_code == 0, alone.output
        assert _compression(plain) == kept
        # The same pixels, however they are stored.
        np.testing.assert_array_equal(tifffile.imread(target), tifffile.imread(plain))


def test_compression_is_checked_listed_in_help_and_a_config_key(tmp_path: Path) -> None:
    bad = runner.invoke(app, ["x.tif", "--compression", "jpeg"])
    assert bad.exit_code == 2
    assert "--compression must be one of" in bad.stderr and "packbits" in bad.stderr
    assert (
        "--compression [keep|none|deflate|lzw|zstd|packbits]"
        in runner.invoke(app, ["--help"]).stdout
    )
    (tmp_path / "lzw.toml").write_text('compression = "lzw"\n')
    pixels = np.round(_noisy((24, 24)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "in.tif", pixels)
    result = runner.invoke(
        app, [str(tmp_path / "in.tif"), "--config", str(tmp_path / "lzw.toml"), "--weight", "0.1"]
    )
    assert result.exit_code == 0, result.output
    assert _compression(tmp_path / "in_denoised.tif") == "LZW"
