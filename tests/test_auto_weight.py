"""Automatic weight: SURE against the truth, the chosen weight against an oracle, refusals."""

from __future__ import annotations

import importlib.util
import itertools
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.fft import dctn, idctn

import tvdenoise as tvd
from tvdenoise.auto_weight import (
    AutoWeightRecord,
    make_probe,
    parabola_vertex,
    probe_step,
    refuse_non_gaussian,
    sure,
)
from tvdenoise.errors import InvalidParameterError
from tvdenoise.fidelity import L2Fidelity
from tvdenoise.solvers import Problem, SolveRecord, solve


def _tikhonov(f: np.ndarray, weight: float) -> tuple[np.ndarray, np.ndarray]:
    """beta = 2 closed form (I - 2 weight Laplacian)^-1 f by DCT-II, and its eigenvalues."""
    h, w = f.shape
    ky = 2 - 2 * np.cos(np.pi * np.arange(h) / h)
    kx = 2 - 2 * np.cos(np.pi * np.arange(w) / w)
    gain = 1 / (1 + 2 * weight * np.add.outer(ky, kx))
    return idctn(dctn(f, norm="ortho") * gain, norm="ortho"), gain


def test_monte_carlo_sure_matches_exact_sure_of_a_linear_denoiser(camera_crop) -> None:
    # For the linear beta = 2 denoiser the divergence is the trace of its matrix, the sum of
    # its DCT gains: SURE is then known exactly, and is close to the true error.
    clean, noisy = camera_crop
    sigma, weight = 25 / 255, 0.5
    u, gain = _tikhonov(noisy, weight)
    n = noisy.size
    exact = float(((u - noisy) ** 2).mean()) - sigma**2 + 2 * sigma**2 * gain.sum() / n
    step = probe_step(sigma, n)
    estimates = []
    # One probe on 128x128 values has a relative spread of about 2.5 % here (Hutchinson's
    # variance 2 sum gain^2); four bring it near 1.2 %.
    for seed in range(4):
        probe = make_probe(torch.Size(noisy.shape), seed, torch.device("cpu"), torch.float64)
        u_probe, _ = _tikhonov(noisy + step * probe.numpy(), weight)
        tensors = (torch.from_numpy(a) for a in (noisy, u, u_probe))
        estimates.append(sure(*tensors, probe, step, sigma))
    assert np.mean(estimates) == pytest.approx(exact, rel=0.03)
    assert np.mean(estimates) == pytest.approx(float(((u - clean) ** 2).mean()), rel=0.05)


def test_sure_of_tv_denoiser_matches_true_error(camera_crop) -> None:
    # SURE is unbiased: its mean over noise draws is the mean true error. One 128x128 draw
    # differs by up to about 6 % (SURE's own spread), so average four draws, each with its
    # own probe, solved in one batch of eight so all stop at the same iteration.
    clean, _ = camera_crop
    sigma, draws = 25 / 255, 4
    rng = np.random.default_rng(7)
    f = torch.from_numpy(clean + sigma * rng.standard_normal((draws, 1, *clean.shape)))
    step = probe_step(sigma, clean.size)
    probes = make_probe(f.shape, 0, f.device, f.dtype)
    problem = Problem(
        torch.cat([f, f + step * probes]), 0.07, 1.0, "isotropic", "vectorial", L2Fidelity()
    )
    u, _ = solve(problem, max_iter=2000, tol=1e-4)
    estimates = [sure(f[k], u[k], u[draws + k], probes[k], step, sigma) for k in range(draws)]
    truths = [float(((u[k, 0].numpy() - clean) ** 2).mean()) for k in range(draws)]
    assert np.mean(estimates) == pytest.approx(np.mean(truths), rel=0.04)


def test_parabola_vertex_of_a_known_parabola() -> None:
    def y(x: float) -> float:
        return 3 * (x - 0.4) ** 2 + 1

    x, value = parabola_vertex((-1, y(-1)), (0, y(0)), (1, y(1)))
    assert (x, value) == pytest.approx((0.4, 1.0))
    assert parabola_vertex((0, 1), (1, 1), (2, 1)) == (1, 1)  # flat: keep the middle


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def test_auto_weight_is_near_the_oracle_and_deterministic(camera_crop) -> None:
    clean, noisy = camera_crop
    result, record = tvd.denoise(noisy, weight="auto", return_record=True)
    assert isinstance(record, AutoWeightRecord) and isinstance(record, SolveRecord)
    choice = record.weight_choice
    assert choice.sigma_estimated and choice.sigma == pytest.approx(25 / 255, rel=0.1)
    assert len(choice.trials) >= 3 and choice.iterations > 0 and record.converged
    oracle = max(_psnr(tvd.denoise(noisy, weight=0.1 * 2 ** (k / 4)), clean) for k in range(-6, 5))
    assert _psnr(result, clean) >= oracle - 0.3
    # The same seed gives the same weight and the same image.
    again, record_again = tvd.denoise(noisy, weight="auto", return_record=True)
    assert record_again.weight_choice.weight == choice.weight
    assert np.array_equal(again, result)


def test_given_sigma_is_used_and_colour_works(astronaut_crop) -> None:
    clean, noisy = astronaut_crop
    choice = tvd.choose_weight(noisy, sigma=25 / 255)
    assert isinstance(choice, tvd.WeightChoice)
    assert choice.sigma == 25 / 255 and not choice.sigma_estimated
    # The weight is the vertex of the parabola, in log weight, through the lowest measured
    # risk and its neighbours (fitted here by numpy, not by the search's own formula), so it
    # lies between those neighbours; only rounding separates the two computations.
    points = sorted((math.log(weight), risk) for weight, risk in choice.trials)
    lowest = min(range(len(points)), key=lambda k: points[k][1])
    assert 0 < lowest < len(points) - 1, choice.trials  # a bracketed minimum
    x, y = np.array(points[lowest - 1 : lowest + 2]).T
    a, b, _ = np.polyfit(x, y, 2)
    assert a > 0 and x[0] < -b / (2 * a) < x[2]
    assert math.log(choice.weight) == pytest.approx(-b / (2 * a), abs=1e-9)
    result = tvd.denoise(noisy, weight=choice.weight)
    assert _psnr(result, clean) > _psnr(noisy, clean) + 5


def test_fixed_weight_is_unchanged_and_sigma_needs_auto(camera_crop) -> None:
    _, noisy = camera_crop
    _, record = tvd.denoise(noisy, weight=0.1, return_record=True)
    assert type(record) is SolveRecord
    with pytest.raises(InvalidParameterError, match="sigma"):
        tvd.denoise(noisy, weight=0.1, sigma=0.1)
    with pytest.raises(InvalidParameterError, match="weight"):
        tvd.denoise(noisy, weight="best")


def test_auto_refuses_non_gaussian_fidelities_and_noise_free_images() -> None:
    for name in ("l1", "poisson"):
        with pytest.raises(InvalidParameterError, match="weight='auto' needs fidelity l2"):
            refuse_non_gaussian(name)
        with pytest.raises(InvalidParameterError):
            tvd.denoise(np.zeros((32, 32)), weight="auto", fidelity=name)
    with pytest.raises(InvalidParameterError, match="no noise"):
        tvd.denoise(np.zeros((32, 32)), weight="auto")
    with pytest.raises(InvalidParameterError, match="sigma"):
        tvd.denoise(np.zeros((32, 32)), weight="auto", sigma=-1.0)


def test_benchmark_runs_on_a_tiny_crop() -> None:
    path = Path(__file__).parents[1] / "benchmarks" / "bench_auto_weight.py"
    spec = importlib.util.spec_from_file_location("bench_auto_weight", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.WEIGHT_SIGMAS = (25,)
    bench.NOISE_SIGMAS = (25,)
    lines = bench.main(["--images", "camera", "--size", "40", "--skip-large"])
    text = "\n".join(lines)
    assert "| camera | 25 |" in text and "auto - oracle PSNR" in text
    assert not math.isnan(float(text.split("auto - oracle PSNR: mean ")[1].split(" ")[0]))
    assert "| camera | 512x512 |" in text and "- whole images: wall time median" in text


def _small_tiles(monkeypatch, tiles: int = 4, side: int = 16) -> None:
    """Tiles of ``side`` pixels, ``tiles`` of them, from twice their pixel count."""
    import tvdenoise.auto_weight as auto_weight

    monkeypatch.setattr(auto_weight, "SEARCH_TILES", tiles)
    monkeypatch.setattr(auto_weight, "SEARCH_TILE", side)
    monkeypatch.setattr(auto_weight, "TILED_FROM", 2 * tiles * side * side)


def test_choose_weight_skips_the_final_solve(camera_crop, monkeypatch) -> None:
    # choose_weight is denoise's choice without the solve at the chosen weight: with that
    # solve made impossible it still answers, the same weight and trials as denoise's record.
    import tvdenoise.denoising as denoising

    _, noisy = camera_crop
    image = np.ascontiguousarray(noisy[:48, :40])
    _, record = tvd.denoise(image, weight="auto", sigma=25 / 255, return_record=True)

    def no_final_solve(*args, **kwargs):
        raise AssertionError("choose_weight ran the final solve")

    monkeypatch.setattr(denoising, "solve", no_final_solve)
    choice = tvd.choose_weight(image, sigma=25 / 255)
    assert choice.weight == record.weight_choice.weight
    assert choice.trials == record.weight_choice.trials
    # Outside choose_weight, denoise solves again (here: into the patched solve).
    with pytest.raises(AssertionError, match="final solve"):
        tvd.denoise(image, weight="auto", sigma=25 / 255)


def test_large_images_are_searched_on_tiles_spread_over_them(camera_crop, monkeypatch) -> None:
    # With 4 tiles of 16 pixels from 2 * 4 * 16^2 = 2,048 pixels, a 64x48 image (3,072) is
    # searched on a 2 x 2 grid of tiles centred in their cells: tops round(48 (i + 1/2) / 2)
    # = 12, 36, lefts round(32 (j + 1/2) / 2) = 8, 24. Its weight is the one those tiles get
    # as a batch of their own, and the final solve still covers the whole image.
    _, noisy = camera_crop
    image = np.ascontiguousarray(noisy[:64, :48])
    tiles = [image[top : top + 16, left : left + 16] for top in (12, 36) for left in (8, 24)]
    batch = torch.from_numpy(np.stack(tiles)[:, None].copy())
    own = tvd.choose_weight(batch, sigma=25 / 255)
    _small_tiles(monkeypatch)
    result, record = tvd.denoise(image, weight="auto", sigma=25 / 255, return_record=True)
    assert record.weight_choice.weight == pytest.approx(own.weight, rel=1e-6)
    assert result.shape == image.shape and record.converged
    assert np.allclose(result, tvd.denoise(image, weight=own.weight), atol=1e-3)


def test_tile_rule_counts_pixels_not_sides(camera_crop, monkeypatch) -> None:
    # 40x50 = 2,000 pixels <= 2,048: searched whole although both sides exceed 32 (the
    # weight is the whole image's, and the final solve starts from the search's solution).
    _, noisy = camera_crop
    image = np.ascontiguousarray(noisy[:40, :50])
    whole = tvd.choose_weight(image, sigma=25 / 255)
    _small_tiles(monkeypatch)
    _, record = tvd.denoise(image, weight="auto", sigma=25 / 255, return_record=True)
    assert record.weight_choice.weight == pytest.approx(whole.weight, rel=1e-9)


def test_search_windows_cover_the_image_on_a_grid_of_its_shape() -> None:
    from tvdenoise.auto_weight import SEARCH_TILE, SEARCH_TILES, TILED_FROM, search_windows

    assert search_windows(724, 724) is None  # 524,176 pixels <= TILED_FROM = 524,288
    assert TILED_FROM == 2 * SEARCH_TILES * SEARCH_TILE**2
    for height, width, grid in [(3000, 4000, (3, 5)), (1024, 1024, (4, 4)), (4000, 3000, (5, 3))]:
        windows = search_windows(height, width)
        assert windows is not None and len(windows) == grid[0] * grid[1]
        tops = sorted({top for top, _, _ in windows})
        lefts = sorted({left for _, left, _ in windows})
        assert (len(tops), len(lefts)) == grid
        assert all(side == SEARCH_TILE for _, _, side in windows)
        # Inside the image, not overlapping, spread evenly about its centre.
        assert tops[0] >= 0 and tops[-1] + SEARCH_TILE <= height
        assert lefts[0] >= 0 and lefts[-1] + SEARCH_TILE <= width
        assert min(np.diff(tops)) >= SEARCH_TILE and min(np.diff(lefts)) >= SEARCH_TILE
        assert abs(tops[0] + tops[-1] + SEARCH_TILE - height) <= 1
        assert abs(lefts[0] + lefts[-1] + SEARCH_TILE - width) <= 1
    # A strip lower than a tile: one row of square tiles as high as the strip.
    strip = search_windows(100, 20000)
    assert strip is not None and len(strip) == SEARCH_TILES
    assert {(top, side) for top, _, side in strip} == {(0, 100)}


def test_pooled_gap_is_the_batch_total_over_its_total_energy(camera_crop) -> None:
    # A flat tile and a textured one: the pooled stop judges their sums, so it stops once
    # (sum E - sum D) / sum E <= tol, while the flat tile's own relative gap may be larger.
    from tvdenoise.ops import divergence

    _, noisy = camera_crop
    textured = noisy[:32, :32]
    flat = 0.5 + 0.02 * np.random.default_rng(3).standard_normal((32, 32))
    f = torch.from_numpy(np.stack([flat, textured])[:, None].copy())
    problem = Problem(f, 0.1, 1.0, "isotropic", "vectorial", L2Fidelity())
    results = {}
    for pooled in (False, True):
        dual = f.new_zeros((2, 1, 2, 32, 32))
        u, record = solve(
            problem,
            "chambolle_pock",
            max_iter=5000,
            tol=1e-3,
            dual=dual,
            pooled=pooled,
            check_every=1,
        )
        energy = problem.energy(u)
        lower = L2Fidelity().dual(f, divergence(dual))
        pooled_gap = float((energy - lower).sum() / energy.sum())
        largest = float(((energy - lower) / energy).max())
        results[pooled] = (record, pooled_gap, largest)
    record, pooled_gap, _ = results[True]
    assert record.gap == pytest.approx(pooled_gap, rel=1e-6) and pooled_gap <= 1e-3
    plain, _, largest = results[False]
    assert plain.gap == pytest.approx(largest, rel=1e-6) and largest <= 1e-3
    assert record.iterations <= plain.iterations


def test_every_exact_solver_path_chooses_the_same_weight(camera_crop, monkeypatch) -> None:
    # The search warm-starts the primal-dual solvers from the nearest trial's dual: the
    # fused rof kernel, its PyTorch fallback and the generic chambolle_pock must agree on
    # the weight (they solve the same problems, to the same tolerance) and on the image.
    import tvdenoise.solvers.native as rof_native
    import tvdenoise.solvers.rof as rof

    _, noisy = camera_crop
    options = {"weight": "auto", "sigma": 25 / 255, "return_record": True}
    # Count which rof iteration runs: the kernel's or the PyTorch operations'.
    runs: list[str] = []

    def counted(label: str, iteration_class: type) -> Callable[..., object]:
        def make(*args: object) -> object:
            runs.append(label)
            return iteration_class(*args)

        return make

    monkeypatch.setattr(rof, "_NativeIteration", counted("kernel", rof._NativeIteration))
    monkeypatch.setattr(rof, "_TorchIteration", counted("torch", rof._TorchIteration))
    results = {}
    if rof_native.load() is not None:  # else no C compiler: the two other paths still run
        results["kernel"] = tvd.denoise(noisy, solver="rof", **options)
        assert runs and set(runs) == {"kernel"}
        runs.clear()
    with monkeypatch.context() as no_kernel:
        no_kernel.setattr(rof_native, "load", lambda: None)  # as without a C compiler
        results["torch"] = tvd.denoise(noisy, solver="rof", **options)
    assert runs and set(runs) == {"torch"}
    runs.clear()
    results["chambolle_pock"] = tvd.denoise(noisy, solver="chambolle_pock", **options)
    assert runs == []
    weights = {path: record.weight_choice.weight for path, (_, record) in results.items()}
    images = {path: image for path, (image, _) in results.items()}
    for first, second in itertools.combinations(results, 2):
        assert weights[first] == pytest.approx(weights[second], rel=0.03), (first, second)
        assert np.abs(images[first] - images[second]).max() < 0.02, (first, second)
    # beta > 1 runs the accelerated solver, which has no dual: the search still works.
    image, record = tvd.denoise(noisy, beta=1.5, **options)
    assert record.solver == "accelerated" and record.converged
    assert 0.01 < record.weight_choice.weight < 1.0
    assert _psnr(image, camera_crop[0]) > _psnr(noisy, camera_crop[0]) + 3


def test_trials_start_warm_even_when_one_solution_is_kept(camera_crop, monkeypatch) -> None:
    # Trial solutions beyond KEEP are dropped (highest risk first) to bound memory; with
    # KEEP = 1 every trial after the first must still start from a kept solution.
    import tvdenoise.auto_weight as auto_weight

    held: list[bool] = []
    real_solve = auto_weight.solve

    def counting_solve(problem, *args, **kwargs):
        held.append(kwargs["init"] is not None)
        return real_solve(problem, *args, **kwargs)

    monkeypatch.setattr(auto_weight, "solve", counting_solve)
    monkeypatch.setattr(auto_weight, "KEEP", 1)
    _, noisy = camera_crop
    _, record = tvd.denoise(noisy, weight="auto", sigma=25 / 255, return_record=True)
    trials = record.weight_choice.trials
    assert len(trials) >= 3 and len(held) == len(trials)
    assert held[0] is False and all(held[1:])  # every later trial starts warm
