"""Solvers against independent references: scikit-image, the DCT closed form, optimality."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.fft import dctn, idctn

from tvdenoise.fidelity import L2Fidelity
from tvdenoise.solvers import IterationInfo, Problem, solve
from tvdenoise.tv import total_variation


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
    return u[0].permute(1, 2, 0).numpy()


def _reference_energy(u: torch.Tensor, problem: Problem, eps: float) -> float:
    """Energy computed from tvdenoise.tv's public functional, independently of the solver."""
    tv = total_variation(u[0], problem.beta, problem.tv, problem.color, eps)
    return float(0.5 * ((u - problem.f) ** 2).sum() + problem.weight * tv)


def test_beta1_grey_matches_scikit_image_chambolle(camera_crop) -> None:
    from skimage.restoration import denoise_tv_chambolle

    _, noisy = camera_crop
    reference = denoise_tv_chambolle(noisy, weight=0.1, eps=0, max_num_iter=20000)
    u, record = solve(_problem(noisy), max_iter=20000, tol=1e-10)
    assert record.solver == "chambolle_pock"
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


@pytest.mark.parametrize("tv", ["isotropic", "anisotropic"])
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
        (1.5, "isotropic", "vectorial"),
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


def test_batched_solve_equals_individual_solves(camera_crop) -> None:
    _, noisy = camera_crop
    a, b = noisy[:32, :32], noisy[32:64, :32]
    batch = _problem(a)
    batch = Problem(
        torch.cat([batch.f, _problem(b).f]), 0.1, 1.0, "isotropic", "channelwise", L2Fidelity()
    )
    u, _ = solve(batch, max_iter=20000, tol=1e-10)
    ua, _ = solve(_problem(a), max_iter=20000, tol=1e-10)
    ub, _ = solve(_problem(b), max_iter=20000, tol=1e-10)
    assert torch.allclose(u[0], ua[0], atol=1e-4) and torch.allclose(u[1], ub[0], atol=1e-4)


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


def test_callback_sees_every_evaluation_and_record_is_complete(camera_crop) -> None:
    _, noisy = camera_crop
    seen: list[IterationInfo] = []
    _, record = solve(_problem(noisy), max_iter=500, tol=1e-4, callback=seen.append, check_every=1)
    assert [info.iteration for info in seen] == list(range(1, record.iterations + 1))
    assert record.converged and record.stop_reason == "tol"
    assert record.gap is not None and record.gap <= 1e-4
    assert record.seconds > 0 and record.energy == seen[-1].energy
    assert all(info.gap is not None for info in seen)


def test_iteration_cap_and_time_limit_stop_without_convergence(camera_crop) -> None:
    _, noisy = camera_crop
    _, capped = solve(_problem(noisy), max_iter=5, tol=0.0)
    assert capped.iterations == 5 and not capped.converged and capped.stop_reason == "max_iter"
    _, timed = solve(_problem(noisy), max_iter=10**7, tol=0.0, time_limit=0.05, check_every=1)
    assert timed.stop_reason == "time_limit" and not timed.converged
    assert timed.seconds < 5
