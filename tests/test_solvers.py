"""Solvers against independent references: scikit-image, the DCT closed form, optimality."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.fft import dctn, idctn

from tvdenoise.fidelity import L2Fidelity
from tvdenoise.solvers import IterationInfo, Problem, solve


def _problem(
    f: np.ndarray,
    weight: float = 0.1,
    beta: float = 1.0,
    tv: str = "isotropic",
    color: str = "channelwise",
    eps: float = 0.0,
) -> Problem:
    batch = torch.from_numpy(np.atleast_3d(f).transpose(2, 0, 1).copy())[None]
    return Problem(batch, weight, beta, tv, color, L2Fidelity(), eps)


def _to_hwc(u: torch.Tensor) -> np.ndarray:
    return u[0].permute(1, 2, 0).detach().numpy()


def _numpy_tv(u: np.ndarray, beta: float, tv: str, color: str, eps: float) -> float:
    """TV_beta of an (H, W, C) array from CONVENTIONS.md, "Total variation", in numpy alone."""
    dy = np.zeros_like(u)
    dx = np.zeros_like(u)
    dy[:-1] = np.diff(u, axis=0)
    dx[:, :-1] = np.diff(u, axis=1)
    if tv in ("isotropic", "symmetric"):
        # symmetric: the mean of the forward stencil's term and the backward stencil's,
        # u[i, j] - u[i - 1, j] and u[i, j] - u[i, j - 1] (0 in the first row / column).
        stencils = [(dy, dx)]
        if tv == "symmetric":
            by, bx = np.zeros_like(u), np.zeros_like(u)
            by[1:] = u[1:] - u[:-1]
            bx[:, 1:] = u[:, 1:] - u[:, :-1]
            stencils.append((by, bx))
        total = 0.0
        for sy, sx in stencils:
            squares = sy**2 + sx**2
            if color == "vectorial":
                squares = squares.sum(axis=2)
            total += float(((squares + eps**2) ** (beta / 2)).sum())
        return total / len(stencils)
    total = 0.0
    for d in (dy, dx):
        squares = d**2 if color == "channelwise" else (d**2).sum(axis=2)
        total += float(((squares + eps**2) ** (beta / 2)).sum())
    return total


def _reference_energy(u: torch.Tensor, problem: Problem, eps: float) -> float:
    """E(u) = 1/2 ||u - f||^2 + weight * TV_beta(u), independently of the package's code."""
    u_hwc, f_hwc = _to_hwc(u).astype(np.float64), _to_hwc(problem.f).astype(np.float64)
    tv = _numpy_tv(u_hwc, problem.beta, problem.tv, problem.color, eps)
    return 0.5 * float(((u_hwc - f_hwc) ** 2).sum()) + problem.weight * tv


def test_beta1_grey_matches_scikit_image_chambolle(camera_crop) -> None:
    from skimage.restoration import denoise_tv_chambolle

    _, noisy = camera_crop
    reference = denoise_tv_chambolle(noisy, weight=0.1, eps=0, max_num_iter=20000)
    u, record = solve(_problem(noisy), max_iter=20000, tol=1e-10)
    assert record.solver in ("rof", "chambolle_pock")  # auto's choices for L2, beta = 1
    assert np.abs(_to_hwc(u)[:, :, 0] - reference).max() <= 1e-3


@pytest.mark.slow
def test_beta1_colour_channelwise_matches_scikit_image_chambolle(astronaut_crop) -> None:
    from skimage.restoration import denoise_tv_chambolle

    _, noisy = astronaut_crop
    reference = denoise_tv_chambolle(noisy, weight=0.1, eps=0, max_num_iter=20000, channel_axis=-1)
    u, _ = solve(_problem(noisy, color="channelwise"), max_iter=20000, tol=1e-10)
    assert np.abs(_to_hwc(u) - reference).max() <= 1e-3


def _neumann_dct_solution(f: np.ndarray, weight: float) -> np.ndarray:
    """Solve (I - 2 weight Laplacian) u = f with the Neumann Laplacian, diagonal in DCT-II."""
    h, w = f.shape
    ky = 2 - 2 * np.cos(np.pi * np.arange(h) / h)
    kx = 2 - 2 * np.cos(np.pi * np.arange(w) / w)
    return idctn(
        dctn(f, norm="ortho") / (1 + 2 * weight * (ky[:, None] + kx[None, :])), norm="ortho"
    )


# For beta = 2, symmetric TV is the forward one: the backward squares are the forward squares
# moved by one pixel, so the mean of the two stencils is the same sum.
@pytest.mark.parametrize("tv", ["isotropic", "anisotropic", "symmetric"])
@pytest.mark.parametrize("weight", [0.1, 1.0])
def test_beta2_matches_dct_closed_form(camera_crop, tv: str, weight: float) -> None:
    _, noisy = camera_crop
    expected = _neumann_dct_solution(noisy, weight)
    u, record = solve(_problem(noisy, weight=weight, beta=2.0, tv=tv), max_iter=5000, tol=1e-12)
    assert record.converged
    assert np.abs(_to_hwc(u)[:, :, 0] - expected).max() <= 1e-4


def test_beta2_colour_vectorial_matches_dct_per_channel(astronaut_crop) -> None:
    _, noisy = astronaut_crop
    expected = np.stack([_neumann_dct_solution(noisy[:, :, c], 0.2) for c in range(3)], axis=-1)
    u, _ = solve(_problem(noisy, weight=0.2, beta=2.0, color="vectorial"), max_iter=5000, tol=1e-12)
    assert np.abs(_to_hwc(u) - expected).max() <= 1e-4


@pytest.mark.parametrize(
    ("beta", "tv", "color"),
    [
        (1.0, "isotropic", "channelwise"),
        (1.0, "isotropic", "vectorial"),
        (1.0, "anisotropic", "channelwise"),
        (1.0, "anisotropic", "vectorial"),
        (1.0, "symmetric", "channelwise"),
        (1.0, "symmetric", "vectorial"),
        (1.5, "isotropic", "vectorial"),
        (1.5, "symmetric", "vectorial"),
        (2.0, "isotropic", "channelwise"),
        (3.0, "anisotropic", "channelwise"),
    ],
)
def test_result_energy_not_above_random_perturbations(
    astronaut_crop, beta: float, tv: str, color: str
) -> None:
    _, noisy = astronaut_crop
    noisy = noisy[:48, :48]
    eps = 0.0 if beta in (1.0, 2.0, 3.0) else 1e-3
    problem = _problem(noisy, beta=beta, tv=tv, color=color, eps=eps)
    u, record = solve(problem, max_iter=20000, tol=1e-9)
    assert record.converged
    energy = _reference_energy(u, problem, eps)
    assert energy == pytest.approx(record.energy, rel=1e-9)
    # Minimality: E(u) - E* <= gap * E(u), so no point can go below E(u) by more than that.
    slack = record.gap * energy
    generator = torch.Generator().manual_seed(7)
    for scale in (1e-2, 1e-3, 1e-4):
        for _ in range(5):
            delta = scale * torch.randn(u.shape, dtype=u.dtype, generator=generator)
            assert _reference_energy(u + delta, problem, eps) >= energy - slack


@pytest.mark.parametrize(("beta", "eps"), [(0.5, 1e-2), (0.8, 1e-2), (1.5, 1e-3), (2.5, 0.0)])
def test_non_unit_beta_is_finite_and_lowers_energy(camera_crop, beta: float, eps: float) -> None:
    _, noisy = camera_crop
    problem = _problem(noisy[:64, :64].astype(np.float32), beta=beta, eps=eps)
    u, record = solve(problem, max_iter=3000, tol=1e-6)
    assert torch.isfinite(u).all()
    start = _reference_energy(problem.f, problem, eps)
    assert _reference_energy(u, problem, eps) < 0.9 * start
    assert record.local_minimum == (beta < 1)
    energies = record.energies
    assert all(b <= a * (1 + 1e-6) for a, b in itertools.pairwise(energies))


def test_chambolle_pock_gap_certifies_distance_to_minimiser(camera_crop) -> None:
    # 1-strong convexity: 1/2 ||u - u*||^2 <= E(u) - E* <= gap.
    _, noisy = camera_crop
    problem = _problem(noisy)
    u_star, _ = solve(problem, max_iter=20000, tol=1e-11)
    u, record = solve(problem, max_iter=2000, tol=1e-3)
    assert record.converged and record.gap <= 1e-3
    gap_abs = record.gap * record.energy
    assert 0.5 * float(((u - u_star) ** 2).sum()) <= gap_abs * (1 + 1e-6)


@pytest.mark.parametrize(
    ("solver", "beta", "eps", "max_iter", "tol"),
    [
        ("chambolle_pock", 1.0, 0.0, 20000, 1e-10),
        ("accelerated", 1.5, 1e-3, 20000, 1e-12),
        ("gd", 1.5, 1e-3, 200, 0.0),
        ("adam", 1.5, 1e-3, 200, 0.0),
    ],
)
def test_batched_solve_equals_individual_solves(
    camera_crop, solver: str, beta: float, eps: float, max_iter: int, tol: float
) -> None:
    _, noisy = camera_crop
    a, b = (
        _problem(noisy[:32, :32], beta=beta, eps=eps),
        _problem(noisy[32:64, :32] * 0.5, beta=beta, eps=eps),
    )
    batch = Problem(torch.cat([a.f, b.f]), 0.1, beta, "isotropic", "channelwise", L2Fidelity(), eps)
    options = {"max_iter": max_iter, "tol": tol}
    u, _ = solve(batch, solver, **options)
    ua, _ = solve(a, solver, **options)
    ub, _ = solve(b, solver, **options)
    assert torch.allclose(u[0], ua[0], atol=1e-4) and torch.allclose(u[1], ub[0], atol=1e-4)


@pytest.mark.parametrize(
    ("solver", "beta", "max_iter"),
    [
        ("chambolle_pock", 1.0, 137),
        ("accelerated", 0.7, 124),
        ("accelerated", 1.5, 53),
        ("gd", 1.5, 31),
        ("adam", 1.5, 31),
        ("auto", 0.6, 77),
    ],
)
def test_record_describes_the_returned_image(
    camera_crop, solver: str, beta: float, max_iter: int
) -> None:
    # Whatever stops the solver (tol, cap, restart on the last step), the record's energy is
    # the energy of the image returned, and its iterations are those that were run.
    _, noisy = camera_crop
    eps = 0.0 if beta == 1.0 else 1e-2
    problem = _problem(noisy[:48, :48], beta=beta, eps=eps)
    seen: list[IterationInfo] = []
    u, record = solve(problem, solver, max_iter=max_iter, tol=0.0, callback=seen.append)
    assert record.energy == pytest.approx(_reference_energy(u, problem, eps), rel=1e-9)
    assert seen[-1].iteration == record.iterations
    if solver == "auto":  # the beta = 1 warm start, then max_iter iterations at beta < 1
        assert record.iterations > max_iter and record.stop_reason == "max_iter"
    elif record.stop_reason == "max_iter":
        assert record.iterations == max_iter
    else:  # float64 rounding reached before the cap: no step lowers the energy
        assert record.stop_reason == "line_search" and record.gap < 1e-12
    assert [i.iteration for i in seen] == sorted({i.iteration for i in seen})


@pytest.mark.parametrize("solver", ["gd", "adam"])
def test_autograd_solvers_lower_energy_towards_exact_minimum(camera_crop, solver: str) -> None:
    _, noisy = camera_crop
    problem = _problem(noisy[:48, :48], beta=1.5, eps=1e-3)
    _, exact_record = solve(problem, "accelerated", max_iter=5000, tol=1e-10)
    u, record = solve(problem, solver, max_iter=400, tol=0.0)
    assert record.solver == solver and record.iterations == 400
    start = _reference_energy(problem.f, problem, 1e-3)
    final = _reference_energy(u, problem, 1e-3)
    assert exact_record.energy <= final < start
    # Most of the way to the minimum.
    assert (final - exact_record.energy) <= 0.05 * (start - exact_record.energy)


@pytest.mark.parametrize(
    ("solver", "beta", "eps"),
    [
        ("chambolle_pock", 1.0, 0.0),
        ("accelerated", 1.5, 1e-3),
        ("gd", 1.5, 1e-3),
        ("adam", 1.5, 1e-3),
    ],
)
def test_callback_sees_every_evaluation_and_record_is_complete(
    camera_crop, solver: str, beta: float, eps: float
) -> None:
    _, noisy = camera_crop
    seen: list[IterationInfo] = []
    tol = 1e-4 if solver in ("chambolle_pock", "accelerated") else 1e-3
    _, record = solve(
        _problem(noisy, beta=beta, eps=eps),
        solver,
        max_iter=3000,
        tol=tol,
        callback=seen.append,
        check_every=1,
    )
    assert [info.iteration for info in seen] == list(range(1, record.iterations + 1))
    assert record.converged and record.stop_reason == "tol" and record.solver == solver
    assert record.seconds > 0 and record.energy == seen[-1].energy
    assert all(b.seconds >= a.seconds for a, b in itertools.pairwise(seen))
    if solver in ("chambolle_pock", "accelerated"):
        # Exact methods report a certified relative gap.
        assert record.gap is not None and record.gap <= tol
        assert all(info.gap is not None for info in seen)
    else:
        assert record.gap is None and record.relative_change is not None
        assert record.relative_change <= tol


def test_iteration_cap_and_time_limit_stop_without_convergence(camera_crop) -> None:
    _, noisy = camera_crop
    _, capped = solve(_problem(noisy), max_iter=5, tol=0.0)
    assert capped.iterations == 5 and not capped.converged and capped.stop_reason == "max_iter"
    _, timed = solve(_problem(noisy), max_iter=10**7, tol=0.0, time_limit=0.05, check_every=1)
    assert timed.stop_reason == "time_limit" and not timed.converged
    assert timed.seconds < 5


@pytest.mark.parametrize("solver", ["rof", "chambolle_pock", "accelerated"])
def test_symmetric_tv_commutes_with_a_half_turn_and_forward_tv_does_not(
    astronaut_crop, solver: str
) -> None:
    # Turning the image by 180 degrees swaps the forward and backward stencils, so the
    # symmetric model's minimiser turns with it; the forward-only model's does not.
    _, noisy = astronaut_crop
    noisy = noisy[:40, :44]
    turned = noisy[::-1, ::-1].copy()
    options = {"max_iter": 20000, "tol": 1e-9}
    differences = {}
    for tv in ("symmetric", "isotropic"):
        model = {"weight": 0.15, "tv": tv, "color": "vectorial"}
        model["eps"] = 1e-3 if solver == "accelerated" else 0.0
        u, _ = solve(_problem(noisy, **model), solver, **options)
        v, _ = solve(_problem(turned, **model), solver, **options)
        differences[tv] = np.abs(_to_hwc(u)[::-1, ::-1] - _to_hwc(v)).max()
    assert differences["symmetric"] <= 1e-5
    assert differences["isotropic"] >= 1e-2
