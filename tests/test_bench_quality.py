"""Smoke test of benchmarks/bench_quality.py on a tiny input, and its RESULTS.md section."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_quality
from common import write_section


def test_quick_run_prints_a_table(capsys) -> None:
    assert bench_quality.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "| camera | 25 |" in out and "skimage chambolle oracle" in out


def test_oracle_finds_the_peak_of_a_known_curve() -> None:
    # A fake denoiser whose PSNR peaks at weight 0.3: the oracle must land within 2^(1/16).
    clean = np.zeros((8, 8))

    def method(noisy: np.ndarray, weight: float) -> np.ndarray:
        return np.full_like(noisy, 0.01 * (1 + abs(np.log2(weight / 0.3))))

    best = bench_quality.oracle(clean, clean, method, first_guess=0.05)
    assert best.weight is not None and abs(np.log2(best.weight / 0.3)) <= 1 / 16


def test_write_section_replaces_only_its_block(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    path.write_text("# R\n\n<!-- BEGIN other.py -->\nkeep\n<!-- END other.py -->\n")
    write_section(bench_quality.SECTION, "first\n", path)
    write_section(bench_quality.SECTION, "second\n", path)
    text = path.read_text()
    assert "keep" in text and "second" in text and "first" not in text
    assert text.count("<!-- BEGIN bench_quality.py -->") == 1


def test_converged_skimage_reaches_the_minimum_tvdenoise_certifies() -> None:
    # scikit-image (an independent implementation) run to the gap at the oracle weight
    # lands on the minimiser of the same energy that tvdenoise solves exactly.
    import tvdenoise

    clean = bench_quality.load("camera", 48)
    noisy = clean + 25 / 255 * bench_quality.noise(0, clean.shape)
    scored = bench_quality.skimage_converged(clean, noisy, 0.1)
    assert scored.weight is not None and scored.iterations is not None
    assert scored.iterations >= 100
    exact = tvdenoise.denoise(
        noisy, weight=scored.weight, tv="isotropic", color="channelwise", tol=1e-7
    )
    same = bench_quality.score(clean, exact, scored.weight)
    assert abs(same.psnr - scored.psnr) < 0.02
    # The energy is the one both minimise: the exact result is not above scikit-image's.
    e_exact = bench_quality.forward_energy(exact, noisy, scored.weight)
    from skimage.restoration import denoise_tv_chambolle

    early = denoise_tv_chambolle(noisy, scored.weight, max_num_iter=5)
    assert e_exact <= bench_quality.forward_energy(early, noisy, scored.weight)


@pytest.mark.slow
def test_models_quick_run_prints_the_models_table(capsys) -> None:
    assert bench_quality.main(["--models", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "| camera | 25 |" in out and "nonlocal time / default" in out


def test_synthetic_images_are_piecewise_affine() -> None:
    # away from the jumps, the second differences of a piecewise-affine image vanish
    for name in bench_quality.SYNTHETIC:
        image = bench_quality.synthetic(name, 64)
        assert image.min() >= 0.0 and image.max() <= 1.0
        second = np.abs(np.diff(image, 2, axis=1))
        assert np.median(second) < 1e-12
