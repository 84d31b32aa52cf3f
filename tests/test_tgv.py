"""Second-order TGV (tv="tgv"): the symmetrised gradient's adjoint, TGV of affine images, the
minimiser and its certified gap, colour, batches and volumes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import tvdenoise
from tvdenoise.errors import InvalidParameterError
from tvdenoise.fidelity import get_fidelity
from tvdenoise.ops import gradient
from tvdenoise.solvers import Problem
from tvdenoise.solvers.tgv import (
    certificate,
    feasible_dual,
    field_mask,
    operator_norm_squared,
    solve_tgv,
    symmetric_components,
    symmetric_divergence,
    symmetric_gradient,
    tgv_energy,
)


def _frobenius(a: torch.Tensor, b: torch.Tensor, ndim: int) -> torch.Tensor:
    """The weighted Frobenius product of two symmetric fields stored as diagonal then k < l:
    off-diagonal entries count twice."""
    factors = torch.ones(a.shape[2], dtype=a.dtype)
    factors[ndim:] = 2.0
    return (a * b * factors.view((1, 1, -1) + (1,) * ndim)).sum()


@pytest.mark.parametrize("spatial", [(7, 9), (4, 5, 6)])
@pytest.mark.parametrize("spacing", [False, True])
def test_symmetric_gradient_adjoint_identity(spatial: tuple[int, ...], spacing: bool) -> None:
    ndim = len(spatial)
    steps = tuple(1.0 + 0.5 * k for k in range(ndim)) if spacing else None
    generator = torch.Generator().manual_seed(3)
    w = torch.randn((2, 3, ndim, *spatial), generator=generator, dtype=torch.float64)
    q = torch.randn(
        (2, 3, symmetric_components(ndim), *spatial), generator=generator, dtype=torch.float64
    )
    lhs = _frobenius(symmetric_gradient(w, ndim, steps), q, ndim)
    rhs = -(w * symmetric_divergence(q, ndim, steps)).sum()
    assert torch.allclose(lhs, rhs, rtol=1e-12, atol=1e-12)


def test_operator_bound_holds_by_power_iteration() -> None:
    # ||K||^2 for K(u, w) = (D u - w, E w), estimated by power iteration on K^T K.
    generator = torch.Generator().manual_seed(0)
    u = torch.randn((1, 1, 16, 16), generator=generator, dtype=torch.float64)
    w = field_mask(torch.randn((1, 1, 2, 16, 16), generator=generator, dtype=torch.float64), 2)
    from tvdenoise.ops import divergence

    for _ in range(300):
        p, q = gradient(u, 2) - w, symmetric_gradient(w, 2)
        # off-diagonals of q count twice in the product: the adjoint of E takes 2 q_kl
        u_new = -divergence(p, 2)
        w_new = field_mask(-p, 2) - symmetric_divergence(q, 2)
        size = torch.sqrt((u_new**2).sum() + (w_new**2).sum())
        u, w = u_new / size, w_new / size
    p, q = gradient(u, 2) - w, symmetric_gradient(w, 2)
    estimate = float((p**2).sum() + _frobenius(q, q, 2))
    assert estimate <= operator_norm_squared(2)
    assert estimate > 0.5 * operator_norm_squared(2)  # the bound is not vacuous


def _affine(shape: tuple[int, ...], channels: int) -> np.ndarray:
    grids = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    planes = [
        0.2 + sum((0.01 * (c + 1) * (k + 1)) * g for k, g in enumerate(grids))
        for c in range(channels)
    ]
    return np.stack(planes, axis=-1) if channels > 1 else planes[0]


def test_tgv_of_an_affine_image_is_zero() -> None:
    u = torch.tensor(_affine((12, 15), 1)).view(1, 1, 12, 15)
    problem = Problem(u, 0.3, 1.0, "tgv", "vectorial", get_fidelity("l2"))
    w = gradient(u, 2)
    assert float(tgv_energy(problem, u, w)) == pytest.approx(0.0, abs=1e-12)
    # while its TV is not: the affine part costs TV but not TGV
    assert float(tvdenoise.total_variation(u)) > 1.0


@pytest.mark.parametrize(
    ("shape", "channels", "volume"),
    [((20, 24), 1, False), ((16, 18), 3, False), ((5, 8, 9), 1, True)],
)
def test_denoising_an_affine_image_returns_it_unchanged(
    shape: tuple[int, ...], channels: int, volume: bool
) -> None:
    image = _affine(shape, channels)
    result = tvdenoise.denoise(image, weight=0.2, tv="tgv", volume=volume, dtype=torch.float64)
    np.testing.assert_allclose(result, image, atol=1e-9)
    # TV flattens the same ramp's ends (it is not free for TV)
    tv_result = tvdenoise.denoise(image, weight=0.2, volume=volume, dtype=torch.float64)
    assert np.abs(tv_result - image).max() > 1e-3


def _noisy_ramp(size: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A piecewise-affine image: two ramps of different slopes meeting at a jump, plus noise."""
    y, x = np.mgrid[0:size, 0:size] / size
    clean = np.where(x < 0.5, 0.2 + 0.5 * y, 0.9 - 0.6 * x)
    noisy = clean + 0.08 * np.random.default_rng(seed).standard_normal(clean.shape)
    return clean, noisy


def _problem(noisy: np.ndarray, weight: float = 0.06, ratio: float = 2.0) -> Problem:
    f = torch.tensor(noisy).view(1, 1, *noisy.shape)
    return Problem(f, weight, 1.0, "tgv", "vectorial", get_fidelity("l2"), tgv_ratio=ratio)


@pytest.fixture(scope="module")
def reference() -> tuple[Problem, torch.Tensor, torch.Tensor, float]:
    """A long solve (certified to a relative gap of 1e-6): u, w and its energy."""
    _, noisy = _noisy_ramp(16)
    problem = _problem(noisy)
    state = torch.zeros((1, 1, 7, *noisy.shape), dtype=torch.float64)
    u, record = solve_tgv(problem, max_iter=100_000, tol=1e-6, dual=state)
    assert record.converged
    return problem, u, state[:, :, 5:], record.energy


@pytest.mark.slow
def test_energy_is_not_above_small_perturbations_of_the_result(reference) -> None:
    problem, u, w, energy = reference
    generator = torch.Generator().manual_seed(5)
    for _ in range(20):
        du = 1e-3 * torch.randn(u.shape, generator=generator, dtype=u.dtype)
        dw = 1e-3 * torch.randn(w.shape, generator=generator, dtype=w.dtype)
        assert float(tgv_energy(problem, u + du, w + dw)) >= energy * (1 - 1e-6)
        assert float(tgv_energy(problem, u + du, w)) >= energy * (1 - 1e-6)


@pytest.mark.slow
def test_certified_gap_bounds_the_true_suboptimality(reference) -> None:
    problem, _, _, best = reference
    for tol in (1e-1, 1e-2, 1e-3):
        dual = torch.zeros((1, 1, 7, *problem.f.shape[2:]), dtype=torch.float64)
        _, record = solve_tgv(problem, max_iter=20_000, tol=tol, dual=dual)
        assert record.converged and record.gap is not None and record.gap <= tol
        # The certificate is a lower bound on every achievable energy, the reference's too,
        lower = float(certificate(problem, dual[:, :, 2:5]))
        assert lower <= best
        # and the gap bounds how far the iterate's energy is above the minimum (the
        # reference itself is within 1e-6 relative of it).
        assert record.energy - best <= record.gap * record.energy + 1e-6 * best
        assert record.energy >= best * (1 - 1e-6)


@pytest.mark.slow
def test_tgv_beats_tv_on_a_piecewise_affine_image() -> None:
    clean, noisy = _noisy_ramp(32, seed=1)

    def psnr(u: np.ndarray) -> float:
        return float(10 * np.log10(1.0 / np.mean((u - clean) ** 2)))

    weights = [0.04 * 2 ** (k / 2) for k in range(4)]
    best_tv = max(psnr(tvdenoise.denoise(noisy, weight=w, dtype=torch.float64)) for w in weights)
    best_tgv = max(
        psnr(tvdenoise.denoise(noisy, weight=w, tv="tgv", dtype=torch.float64)) for w in weights
    )
    assert best_tgv > best_tv + 0.5


@pytest.mark.slow
def test_batch_and_colour_match_one_image_at_a_time() -> None:
    _, first = _noisy_ramp(12, seed=2)
    _, second = _noisy_ramp(12, seed=3)
    colour = np.stack([first, second, 0.5 * (first + second)], axis=-1)
    batch = torch.tensor(np.stack([colour, colour[..., ::-1]])).permute(0, 3, 1, 2).contiguous()
    together = tvdenoise.denoise(batch, weight=0.1, tv="tgv", tol=1e-5, dtype=torch.float64)
    for k in range(2):
        alone = tvdenoise.denoise(batch[k], weight=0.1, tv="tgv", tol=1e-5, dtype=torch.float64)
        # each certified to a relative gap of 1e-5: within sqrt(2 gap E) of the minimiser
        assert float(torch.linalg.vector_norm(together[k] - alone)) < 2e-2
    # vectorial colour couples the channels: not the same as channelwise
    channelwise = tvdenoise.denoise(
        batch, weight=0.1, tv="tgv", color="channelwise", tol=1e-5, dtype=torch.float64
    )
    assert float(torch.linalg.vector_norm(channelwise - together)) > 0.1


def test_tgv_ratio_changes_the_model_and_is_checked() -> None:
    _, noisy = _noisy_ramp(12)
    low = tvdenoise.denoise(noisy, weight=0.1, tv="tgv", tgv_ratio=0.5, tol=1e-3)
    high = tvdenoise.denoise(noisy, weight=0.1, tv="tgv", tgv_ratio=8.0, tol=1e-3)
    assert np.abs(low - high).max() > 1e-3
    with pytest.raises(InvalidParameterError, match="tgv_ratio must be > 0"):
        tvdenoise.denoise(noisy, weight=0.1, tv="tgv", tgv_ratio=0)
    with pytest.raises(InvalidParameterError, match="beta = 1"):
        tvdenoise.denoise(noisy, weight=0.1, tv="tgv", beta=1.5)
    with pytest.raises(InvalidParameterError, match="solver"):
        tvdenoise.denoise(noisy, weight=0.1, tv="tgv", solver="rof")


@pytest.mark.slow
def test_automatic_weight_works_with_tgv() -> None:
    clean, noisy = _noisy_ramp(32, seed=4)
    u, record = tvdenoise.denoise(
        noisy, weight="auto", sigma=0.08, tv="tgv", return_record=True, dtype=torch.float64
    )
    choice = record.weight_choice
    assert choice is not None and math.isfinite(choice.weight) and len(choice.trials) >= 3

    def psnr(v: np.ndarray) -> float:
        return float(10 * np.log10(1.0 / np.mean((v - clean) ** 2)))

    grid = [choice.weight * 2**k for k in (-1, -0.5, 0.5, 1)]
    best = max(
        psnr(tvdenoise.denoise(noisy, weight=w, tv="tgv", dtype=torch.float64)) for w in grid
    )
    # SURE on 1,024 values is noisy: within 1 dB of the best of the grid
    assert psnr(u) >= best - 1.0
    assert psnr(u) > psnr(noisy) + 3


@pytest.mark.parametrize(
    ("fidelity", "scale", "weight"), [("l1", 1.0, 0.3), ("poisson", 30.0, 0.5)]
)
def test_tgv_solves_the_other_fidelities_with_a_certified_gap(
    fidelity: str, scale: float, weight: float
) -> None:
    _, noisy = _noisy_ramp(12, seed=6)
    counts = np.clip(noisy, 0.0, None) * scale
    u, record = tvdenoise.denoise(
        counts, weight=weight, tv="tgv", fidelity=fidelity, tol=1e-2, return_record=True
    )
    assert record.converged and record.gap is not None and record.gap <= 1e-2
    assert np.isfinite(u).all()


@pytest.mark.slow
def test_precision_stop_certifies_the_distance_to_the_minimiser(reference) -> None:
    problem, best_u, _, best = reference
    values = best_u.numel()
    # the reference is certified to a relative gap of 1e-6: within this RMS of u*
    reference_error = math.sqrt(2e-6 * best / values)
    for distance in (3e-3, 1e-3):
        u, record = solve_tgv(problem, max_iter=20_000, tol=0.0, distance=distance)
        assert record.stop_reason == "precision"
        rms = float(torch.linalg.vector_norm(u - best_u)) / math.sqrt(values)
        assert rms <= distance + reference_error


def test_local_repair_keeps_the_dual_in_its_ball_and_the_bound_valid() -> None:
    _, noisy = _noisy_ramp(16, seed=7)
    problem = _problem(noisy)
    generator = torch.Generator().manual_seed(1)
    q = 0.5 * torch.randn((1, 1, 3, 16, 16), generator=generator, dtype=torch.float64)
    repaired = feasible_dual(problem, q, passes=50)
    # within both balls: |q|_F <= alpha0 and |div2 q| <= alpha1 (up to the global scale)
    frobenius = repaired[:, :, :2].square().sum(2) + 2 * repaired[:, :, 2].square()
    assert float(frobenius.sqrt().max()) <= problem.weight * problem.tgv_ratio * (1 + 1e-12)
    # every certificate is a lower bound on the minimum (weak duality)
    _, record = solve_tgv(problem, max_iter=20_000, tol=1e-7)
    for passes in (0, 1, 8):
        assert float(certificate(problem, q, passes)) <= record.energy * (1 + 1e-9)
