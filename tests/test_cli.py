"""The command line: outputs, exit codes, error lines, stdout/stderr separation."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tvdenoise import __version__
from tvdenoise.cli import app

runner = CliRunner()


def _psnr(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    return float(10 * np.log10(peak**2 / np.mean((a.astype(float) - b.astype(float)) ** 2)))


def _noisy_pair(size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A piecewise-constant grey image in [0, 1] and a noisy copy (sigma 0.1)."""
    clean = np.full((size, size), 0.2)
    clean[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 0.8
    noisy = clean + 0.1 * np.random.default_rng(seed).standard_normal(clean.shape)
    return clean, np.clip(noisy, 0, 1)


@pytest.fixture
def grey_png(tmp_path: Path) -> tuple[Path, np.ndarray]:
    clean, noisy = _noisy_pair()
    path = tmp_path / "grey.png"
    Image.fromarray(np.round(noisy * 255).astype(np.uint8)).save(path)
    return path, clean


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_default_output_is_written_beside_input_and_is_cleaner(grey_png) -> None:
    path, clean = grey_png
    before = _sha(path)
    result = runner.invoke(app, [str(path), "--weight", "0.1"])
    assert result.exit_code == 0, result.output
    out = path.with_name("grey_denoised.png")
    denoised = np.asarray(Image.open(out))
    noisy = np.asarray(Image.open(path))
    assert denoised.dtype == np.uint8 and denoised.shape == noisy.shape
    assert _psnr(denoised, clean * 255, 255) > _psnr(noisy, clean * 255, 255) + 5
    assert _sha(path) == before  # the input is never modified
    assert "iterations" in result.stderr and "converged" in result.stderr
    assert result.stdout == ""
    assert [p.name for p in path.parent.iterdir() if ".tmp" in p.name] == []


def test_sixteen_bit_rgba_keeps_depth_and_alpha(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    rgb = np.clip(0.5 + 0.1 * rng.standard_normal((32, 40, 3)), 0, 1)
    alpha = rng.integers(0, 65536, (32, 40), dtype=np.uint16)
    pixels = np.dstack([np.round(rgb * 65535).astype(np.uint16), alpha])
    path = tmp_path / "deep.tif"
    import tifffile

    tifffile.imwrite(path, pixels, photometric="rgb", extrasamples=["unassalpha"])
    result = runner.invoke(app, [str(path), "-o", str(tmp_path / "out.tif")])
    assert result.exit_code == 0, result.output
    out = tifffile.imread(tmp_path / "out.tif")
    assert out.dtype == np.uint16 and out.shape == pixels.shape
    assert np.array_equal(out[:, :, 3], alpha)
    assert out[:, :, :3].std() < pixels[:, :, :3].std()
    # 16-bit precision kept: values that are not multiples of 257 (8-bit levels) appear.
    assert np.any(out[:, :, :3] % 257 != 0)


def test_existing_output_is_not_overwritten_without_flag(grey_png) -> None:
    path, _ = grey_png
    out = path.with_name("grey_denoised.png")
    out.write_bytes(b"precious")
    result = runner.invoke(app, [str(path)])
    assert result.exit_code == 1
    assert out.read_bytes() == b"precious"
    assert "exists" in result.stderr and str(out) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = runner.invoke(app, [str(path), "--overwrite"])
    assert result.exit_code == 0
    assert np.asarray(Image.open(out)).shape == (64, 64)


def test_missing_file_fails_alone_and_batch_goes_on(grey_png, tmp_path: Path) -> None:
    path, _ = grey_png
    missing = tmp_path / "nope.png"
    result = runner.invoke(app, [str(missing), str(path), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    error_lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(error_lines) == 1 and str(missing) in error_lines[0]
    assert (tmp_path / "out" / "grey_denoised.png").exists()


def test_not_an_image_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "notes.png"
    bad.write_text("this is not a PNG")
    result = runner.invoke(app, [str(bad)])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tvdenoise: error: ") and str(bad) in lines[0]
    assert not (tmp_path / "notes_denoised.png").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--weight", "-0.1"], "--weight must be > 0, got -0.1"),
        (["--weight", "0"], "--weight must be > 0"),
        (["--beta", "0"], "--beta must be > 0"),
        (
            ["--tv", "bogus"],
            "--tv must be one of isotropic, anisotropic, symmetric, tgv, nonlocal; got 'bogus'",
        ),
        (["--color", "rgb"], "--color must be one of vectorial, channelwise"),
        (["--solver", "newton"], "--solver must be one of auto"),
        (["--max-iter", "0"], "--max-iter must be an integer >= 1"),
        (["--device", "tpu"], "device"),
    ],
)
def test_bad_values_exit_2_with_one_line(grey_png, args: list[str], message: str) -> None:
    path, _ = grey_png
    result = runner.invoke(app, [str(path), *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not path.with_name("grey_denoised.png").exists()


def test_unparseable_number_is_a_usage_error(grey_png) -> None:
    path, _ = grey_png
    result = runner.invoke(app, [str(path), "--weight", "abc"])
    assert result.exit_code == 2
    assert "--weight" in result.stderr


def test_two_inputs_mapping_to_one_output_fail_before_any_work(tmp_path: Path) -> None:
    _, noisy = _noisy_pair(16)
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        Image.fromarray(np.round(noisy * 255).astype(np.uint8)).save(tmp_path / sub / "x.png")
    out = tmp_path / "out"
    result = runner.invoke(
        app, [str(tmp_path / "a/x.png"), str(tmp_path / "b/x.png"), "-o", str(out)]
    )
    assert result.exit_code == 2
    assert "both be written" in result.stderr
    assert not out.exists() or list(out.iterdir()) == []


def _anisotropic_poisson_energy(
    u: np.ndarray, f: np.ndarray, weight: float, beta: float, eps: float
) -> float:
    """``sum(u - f + f log(f / u)) + weight * sum_c sum (Dx u_c^2 + eps^2)^(beta/2) +
    (Dy u_c^2 + eps^2)^(beta/2)`` for (H, W, C) arrays: Poisson fidelity and anisotropic
    channelwise TV with forward differences and a Neumann boundary (CONVENTIONS.md,
    "Differences"), the boundary's zero differences included, written out here rather than
    taken from tvdenoise."""
    dy, dx = np.zeros_like(u), np.zeros_like(u)
    dy[:-1], dx[:, :-1] = np.diff(u, axis=0), np.diff(u, axis=1)
    tv = ((dy**2 + eps**2) ** (beta / 2)).sum() + ((dx**2 + eps**2) ** (beta / 2)).sum()
    ratio = np.where(f > 0, f, 1.0) / np.where(f > 0, u, 1.0)
    data = (u - f + np.where(f > 0, f * np.log(ratio), 0.0)).sum()
    return float(data + weight * tv)


def test_output_file_and_options_reach_the_solver(tmp_path: Path) -> None:
    # Every solver option takes a value other than its default (the solver also one other
    # than auto's choice); the --json record must echo each, and its energy must be that of
    # the written image under exactly this model (the default tv, colour, fidelity, beta or
    # weight in its place changes the number), below the energy there of the default model's
    # solution; max_iter and tol must change the run.
    import tvdenoise

    _, noisy = _noisy_pair(32)
    image = np.stack([noisy, noisy[::-1], noisy.T], axis=-1)  # float64, colour, f >= 0
    path = tmp_path / "colour.npy"
    np.save(path, image)
    options = {
        "weight": 0.05,
        "beta": 1.5,
        "tv": "anisotropic",
        "color": "channelwise",
        "fidelity": "poisson",
        "device": "cpu",
    }
    arguments = [item for key, value in options.items() for item in (f"--{key}", str(value))]

    def run(out: Path, max_iter: int, tol: float, solver: str = "accelerated") -> dict:
        command = [str(path), "-o", str(out), *arguments, "--solver", solver]
        command += ["--max-iter", str(max_iter), "--tol", str(tol), "--json", "--quiet"]
        result = runner.invoke(app, command)
        assert result.exit_code == 0, result.output
        record = json.loads(result.stdout.splitlines()[0])
        assert {key: record[key] for key in options} == options
        assert (record["solver"], record["max_iter"], record["tol"]) == (solver, max_iter, tol)
        # "solver" is the one that ran (here the one asked for), as in the report's records.
        assert "solver_used" not in record and record["output"] == str(out)
        return record

    tight = run(tmp_path / "tight.npy", 2000, 1e-7)
    assert tight["converged"] and tight["stop_reason"] == "tol"
    assert tight["iterations"] <= 2000
    denoised = np.load(tmp_path / "tight.npy")
    assert denoised.shape == image.shape and denoised.dtype == image.dtype
    # eps: the documented default smoothing for 1 <= beta < 2 with a descent solver, 1e-3.
    energy = _anisotropic_poisson_energy(denoised, image, 0.05, 1.5, 1e-3)
    # The solver computed its energy on the float32 result: 1e-6 covers its rounding.
    assert tight["energy"] == pytest.approx(energy, rel=1e-6)
    default_model = tvdenoise.denoise(image, weight=0.05, beta=1.5, fidelity="poisson")
    assert energy < _anisotropic_poisson_energy(default_model, image, 0.05, 1.5, 1e-3)
    loose = run(tmp_path / "loose.npy", 2000, 1e-2)
    assert loose["converged"] and loose["iterations"] < tight["iterations"]
    # gd, not what auto picks for beta = 1.5 (accelerated): the record names the one that ran.
    capped = run(tmp_path / "capped.npy", 5, 0.0, solver="gd")
    assert capped["iterations"] == 5 and capped["stop_reason"] == "max_iter"
    assert not capped["converged"]


def test_quiet_prints_nothing(grey_png) -> None:
    path, _ = grey_png
    result = runner.invoke(app, [str(path), "--quiet"])
    assert result.exit_code == 0
    assert result.stderr == "" and result.stdout == ""


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"tvdenoise {__version__}"


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys; from typer.testing import CliRunner; from tvdenoise.cli import app; "
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
        "assert '--weight' in r.stdout; assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_installed_console_script_in_a_real_subprocess(grey_png, tmp_path: Path) -> None:
    script = shutil.which("tvdenoise")
    assert script is not None, "the tvdenoise console script is not installed"
    path, _ = grey_png
    missing = tmp_path / "missing.png"
    env = {**os.environ, "NO_COLOR": "1"}
    done = subprocess.run(
        [script, str(path), str(missing)], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert "grey_denoised.png" in done.stderr and str(missing) in done.stderr
    assert "Traceback" not in done.stderr
    assert path.with_name("grey_denoised.png").exists()
    done = subprocess.run(
        [sys.executable, "-m", "tvdenoise", "--version"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.strip() == f"tvdenoise {__version__}"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--solver", "chambolle_pock", "--beta", "2"], "chambolle_pock needs beta = 1"),
        (["-o", "out.xyz"], "unsupported"),
        (["-o", "-", "--json"], "cannot share stdout"),
        (["--shard", "3/2"], "1 <= K <= N"),
        (["--overwrite", "--skip-existing"], "contradict"),
    ],
)
def test_usage_errors_are_found_before_any_work(
    grey_png, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: list[str], message: str
) -> None:
    path, _ = grey_png
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, [str(path), *extra])
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grey.png"]


def test_several_inputs_need_an_output_folder_not_a_file(tmp_path: Path) -> None:
    _, noisy = _noisy_pair(16)
    names = []
    for name in ("a.png", "b.png"):
        Image.fromarray(np.round(noisy * 255).astype(np.uint8)).save(tmp_path / name)
        names.append(str(tmp_path / name))
    result = runner.invoke(app, [*names, "-o", str(tmp_path / "result.png")])
    assert result.exit_code == 2 and "output folder" in result.stderr
    assert not (tmp_path / "result.png").exists()
    result = runner.invoke(app, [*names, "-o", str(tmp_path / "results")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == [
        "a_denoised.png",
        "b_denoised.png",
    ]


def test_progress_bar_is_drawn_on_a_terminal(grey_png) -> None:
    path, _ = grey_png
    result = runner.invoke(
        app, [str(path), "--tol", "0", "--max-iter", "40"], env={"TTY_COMPATIBLE": "1"}
    )
    assert result.exit_code == 0, result.output
    assert "━" in result.stderr  # the live bar, on stderr
    for stage in ("reading", "choosing the weight (trial 1)", "solving", "writing"):
        assert f"grey.png {stage}" in result.stderr
    # --tol 0 leaves the output's precision as the target: the bar goes by the gap towards it.
    assert re.search(r"\d+% gap \d\.\de-\d\d -> \d\.\de-\d\d", result.stderr)
    assert "/40" not in result.stderr
    assert "not converged (max_iter)" in result.stderr
    assert result.stdout == ""
