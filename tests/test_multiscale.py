"""Coarse-to-fine starts and the precision stop: they must reach the cold solve's minimiser
within what their certified gap promises, on every shape and path they touch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import tvdenoise
from tvdenoise.fidelity import get_fidelity
from tvdenoise.solvers import Problem, multiscale, native, solve
from tvdenoise.solvers.base import certified_distance


@pytest.fixture
def small_levels(monkeypatch):
    """Let small test images have coarse levels (the defaults start at half a megapixel)."""
    monkeypatch.setattr(multiscale, "MIN_PIXELS", 16)
    monkeypatch.setattr(multiscale, "COARSEST_SIDE", 6)


@pytest.fixture(params=["kernel", "no kernel"])
def kernel_path(request, monkeypatch):
    """Both the fused kernel and the path without it (what TVDENOISE_NO_NATIVE=1 gives)."""
    if request.param == "kernel" and native.load() is None:
        pytest.skip("no C compiler")
    if request.param == "no kernel":
        monkeypatch.setattr(native, "load", lambda: None)
    return request.param


def piecewise(shape: tuple[int, ...], seed: int, sigma: float = 0.1) -> torch.Tensor:
    """Blocky image plus Gaussian noise, float64 (N, C, H, W) or any leading shape."""
    rng = np.random.default_rng(seed)
    *lead, h, w = shape
    coarse = rng.random((*lead, max(h // 8, 1) + 1, max(w // 8, 1) + 1))
    clean = coarse.repeat(8, axis=-2).repeat(8, axis=-1)[..., :h, :w]
    return torch.from_numpy(clean + sigma * rng.standard_normal(shape))


_EXACT: dict[tuple, torch.Tensor] = {}


def exact(problem: Problem) -> torch.Tensor:
    """The minimiser, from a cold float64 solve to a relative gap of 1e-10 (cached: the
    kernel's run, the first parameter, serves the run without it)."""
    key = (problem.f.shape, float(problem.f.sum()), problem.weight, problem.tv, problem.color)
    if key not in _EXACT:
        u, record = solve(problem, max_iter=200_000, tol=1e-10, check_every=50)
        assert record.converged
        _EXACT[key] = u
    return _EXACT[key]


def test_coarsen_averages_blocks_and_repeats_odd_edges():
    x = torch.tensor([[1.0, 2.0, 5.0], [3.0, 4.0, 7.0], [9.0, 9.0, 1.0]])
    # Blocks [[1,2],[3,4]] -> 2.5; [[5],[7]] with the last column repeated -> 6;
    # [[9,9]] with the last row repeated -> 9; [[1]] -> 1.
    assert coarse_values(x) == [[2.5, 6.0], [9.0, 1.0]]
    refined = multiscale.refine(multiscale.coarsen(x), 3, 3)
    assert refined.tolist() == [[2.5, 2.5, 6.0], [2.5, 2.5, 6.0], [9.0, 9.0, 1.0]]


def coarse_values(x: torch.Tensor) -> list[list[float]]:
    return multiscale.coarsen(x[None, None])[0, 0].tolist()


def test_levels_stop_at_the_coarsest_side():
    assert multiscale.levels_for(500, 500) == 0  # under half a megapixel: solved cold
    assert multiscale.levels_for(3000, 4000) == 3
    assert multiscale.levels_for(720, 800) == 2  # 360, 180; 90 < 96
    assert multiscale.levels_for(1, 600_000) == 0


@pytest.mark.parametrize(
    ("shape", "tv", "color"),
    [
        ((1, 1, 61, 67), "symmetric", "vectorial"),  # primes, grey
        ((1, 3, 53, 40), "symmetric", "vectorial"),  # colour, odd height
        ((2, 3, 33, 47), "isotropic", "vectorial"),  # batch
        ((1, 3, 37, 29), "anisotropic", "channelwise"),
        ((1, 1, 1, 97), "symmetric", "vectorial"),  # 1xN
    ],
)
def test_multiscale_reaches_the_cold_minimiser_within_its_gap(
    shape, tv, color, small_levels, kernel_path, monkeypatch
):
    if shape[2] == 1:
        monkeypatch.setattr(multiscale, "COARSEST_SIDE", 1)
    f = piecewise(shape, seed=sum(shape))
    problem = Problem(f, 0.15, 1.0, tv, color, get_fidelity("l2"))
    assert multiscale.levels_for(*shape[-2:]) >= 1
    u_star = exact(problem)
    u, record = solve(problem, max_iter=20_000, tol=1e-4, multiscale=True)
    assert record.converged and record.coarse_work > 0
    # 1-strong convexity: ||u - u*||^2 <= 2 (E(u) - E*) <= 2 gap E(u), summed over samples.
    squared = float(((u - u_star) ** 2).sum())
    assert squared <= 2 * record.gap * record.energy * (1 + 1e-6) + 1e-12
    # The record's energy is the fine problem's.
    assert record.energy == pytest.approx(float(problem.energy(u).sum()), rel=1e-9)


def test_multiscale_saves_fine_iterations_on_a_large_flat_image(kernel_path, monkeypatch):
    # Large flat blocks, where a cold solve needs many iterations.
    monkeypatch.setattr(multiscale, "MIN_PIXELS", 1 << 16)
    monkeypatch.setattr(multiscale, "COARSEST_SIDE", 48)
    rng = np.random.default_rng(5)
    clean = rng.random((4, 4)).repeat(80, 0).repeat(80, 1)[:320, :320]
    f = torch.from_numpy(clean + 0.05 * rng.standard_normal(clean.shape)).float()[None, None]
    problem = Problem(f, 0.1, 1.0, "symmetric", "vectorial", get_fidelity("l2"))
    _, cold = solve(problem, max_iter=5000, tol=1e-4, check_every=10)
    _, warm = solve(problem, max_iter=5000, tol=1e-4, check_every=10, multiscale=True)
    assert warm.converged and cold.converged
    assert warm.iterations + warm.coarse_work < 0.9 * cold.iterations


def test_multiscale_is_ignored_where_it_does_not_apply(small_levels):
    # Volumes, the L1 fidelity, a given starting point: the plain solve, bit for bit.
    volume = piecewise((1, 1, 6, 20, 22), seed=3)
    l2 = Problem(volume, 0.1, 1.0, "isotropic", "vectorial", get_fidelity("l2"))
    image = piecewise((1, 1, 30, 31), seed=4)
    l1 = Problem(image, 0.3, 1.0, "symmetric", "vectorial", get_fidelity("l1"))
    for problem, init in ((l2, None), (l1, None), (replace_weight(l1, "l2"), image.clone())):
        a, ra = solve(problem, max_iter=60, tol=1e-4, init=init, multiscale=True)
        b, rb = solve(problem, max_iter=60, tol=1e-4, init=init)
        assert torch.equal(a, b) and ra.coarse_work == 0 and ra.iterations == rb.iterations


def replace_weight(problem: Problem, fidelity: str) -> Problem:
    return Problem(
        problem.f, problem.weight, 1.0, problem.tv, problem.color, get_fidelity(fidelity)
    )


@pytest.mark.parametrize("solver", ["auto", "chambolle_pock"])
@pytest.mark.parametrize("shape", [(1, 3, 41, 43), (2, 1, 37, 31), (1, 1, 6, 19, 23)])
def test_precision_stop_is_within_its_distance(solver, shape, kernel_path):
    f = piecewise(shape, seed=7)
    problem = Problem(
        f,
        0.1,
        1.0,
        "symmetric" if len(shape) == 4 else "isotropic",
        "vectorial",
        get_fidelity("l2"),
    )
    u_star = exact(problem)
    distance = 2e-3
    u, record = solve(problem, solver, max_iter=20_000, tol=1e-12, distance=distance)
    assert record.stop_reason == "precision" and record.converged
    per_sample = ((u - u_star) ** 2).flatten(1).mean(1).sqrt()
    assert float(per_sample.max()) <= distance
    # The record keeps the true relative gap: at least the actual relative suboptimality,
    # and above the tol it did not need to reach.
    e, e_star = problem.energy(u), problem.energy(u_star)
    suboptimality = float(((e - e_star) / e).max())
    assert suboptimality <= record.gap and record.gap > 1e-12


def test_precision_stop_needs_a_strongly_convex_fidelity():
    f = piecewise((1, 1, 30, 30), seed=8)
    problem = Problem(f, 0.3, 1.0, "isotropic", "vectorial", get_fidelity("l1"))
    _, record = solve(problem, max_iter=200, tol=1e-12, distance=1.0)
    assert record.stop_reason == "max_iter"
    zero = torch.zeros(1)
    assert certified_distance(zero + 1, zero, 10, 0.0) == math.inf
    # 2 * gap / n = 2 * 2 / 16 -> 0.5.
    assert certified_distance(zero + 3, zero + 1, 16, 1.0) == pytest.approx(0.5)


def test_denoise_stops_8bit_input_at_its_precision(kernel_path):
    rng = np.random.default_rng(9)
    clean = rng.random((6, 8)).repeat(12, 0).repeat(12, 1)
    noisy8 = np.clip(np.rint((clean + 0.06 * rng.standard_normal(clean.shape)) * 255), 0, 255)
    noisy8 = noisy8.astype(np.uint8)
    out, record = tvdenoise.denoise(noisy8, weight=0.08, tol=1e-9, return_record=True)
    assert out.dtype == np.uint8 and record.stop_reason == "precision"
    # The same values as floats have no step: they stop on tol (or max_iter) only.
    values = noisy8.astype(np.float32) / 255
    u, float_record = tvdenoise.denoise(
        values, weight=0.08, tol=1e-9, max_iter=3000, return_record=True
    )
    assert float_record.stop_reason != "precision"
    # Certified within half a step of the minimiser, so the 8-bit outputs agree to one level
    # nearly everywhere.
    precise = tvdenoise.denoise(values, weight=0.08, tol=1e-9, precision=1 / 255)
    assert float(np.sqrt(np.mean((precise - u) ** 2))) <= 0.5 / 255
    assert np.abs(out.astype(int) - np.rint(u * 255).astype(int)).max() <= 1
    with pytest.raises(tvdenoise.InvalidParameterError):
        tvdenoise.denoise(values, weight=0.08, precision=-1.0)


def test_output_step_of_each_input_kind():
    from PIL import Image

    from tvdenoise.denoising import output_step

    assert output_step(np.zeros((2, 2), np.uint8)) == 1 / 255
    assert output_step(np.zeros((2, 2), np.uint16)) == 1 / 65535
    assert output_step(np.zeros((2, 2), np.float32)) is None
    assert output_step(torch.zeros(2, 2)) is None
    assert output_step(Image.new("RGB", (2, 2))) == 1 / 255
    assert output_step(Image.new("I;16", (2, 2))) == 1 / 65535
    assert output_step(Image.new("F", (2, 2))) is None


def test_a_warm_start_within_precision_stops_at_the_first_early_check(kernel_path):
    # Started from a solution already within the precision (as the final solve after the
    # weight search often is), the fused solver checks after WARM_FIRST_CHECK iterations, not
    # 25; the generic one at its usual 10.
    from tvdenoise.solvers.rof import WARM_FIRST_CHECK

    f = piecewise((1, 3, 40, 44), seed=11).float()
    problem = Problem(f, 0.1, 1.0, "symmetric", "vectorial", get_fidelity("l2"))
    dual = f.new_zeros((1, 3, 4, 40, 44))
    u, first = solve(problem, max_iter=5000, tol=1e-5, dual=dual)
    assert first.converged
    _, record = solve(problem, max_iter=5000, tol=1e-9, init=u, dual=dual, distance=2e-3)
    assert record.stop_reason == "precision"
    expected = WARM_FIRST_CHECK if kernel_path == "kernel" else 10
    assert record.iterations == expected < 25
