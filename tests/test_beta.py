"""Any beta in [0.3, 3], and every solver with every fidelity and colour coupling."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import tvdenoise

# Relative difference allowed between the solver's recorded energy and the energy of the
# image it returns, recomputed here in float64: the returned image is rounded to float32
# (about 6e-8 relative per value). Forward isotropic TV, the model denoise solved before
# symmetric TV became its default, differs by 5e-4 to 4e-3 on these images (beta != 2).
ENERGY_RTOL = 1e-6


def _differences(u: np.ndarray, backward: bool) -> tuple[np.ndarray, np.ndarray]:
    """Forward (or backward) differences along the rows and columns of ``(C, H, W)``, 0 where
    the neighbour lies outside (Neumann boundary, CONVENTIONS.md, "Differences")."""
    dy, dx = np.zeros_like(u), np.zeros_like(u)
    if backward:
        dy[:, 1:], dx[:, :, 1:] = u[:, 1:] - u[:, :-1], u[:, :, 1:] - u[:, :, :-1]
    else:
        dy[:, :-1], dx[:, :, :-1] = u[:, 1:] - u[:, :-1], u[:, :, 1:] - u[:, :, :-1]
    return dy, dx


def _energy(
    u: np.ndarray,
    f: np.ndarray,
    weight: float,
    beta: float,
    eps: float,
    fidelity: str = "l2",
    color: str = "vectorial",
) -> float:
    """The energy ``denoise`` minimises by default (symmetric TV: the mean of the isotropic
    TV of the forward and of the backward differences), written out in numpy from
    CONVENTIONS.md, "Default model", rather than taken from the library. ``u`` and ``f`` are
    (H, W) or (H, W, C)."""
    u, f = (np.asarray(a, np.float64) for a in (u, f))
    u, f = (a[None] if a.ndim == 2 else a.transpose(2, 0, 1) for a in (u, f))

    def stencil(backward: bool) -> float:
        dy, dx = _differences(u, backward)
        squared = dy**2 + dx**2
        if color == "vectorial":
            squared = squared.sum(axis=0)
        return float(((squared + eps**2) ** (beta / 2)).sum())

    tv = 0.5 * (stencil(False) + stencil(True))
    if fidelity == "l2":
        data = 0.5 * ((u - f) ** 2).sum()
    elif fidelity == "l1":
        data = np.abs(u - f).sum()
    else:  # Poisson: the Kullback-Leibler divergence, f log f = 0 at f = 0
        ratio = np.where(f > 0, f, 1.0) / np.where(f > 0, u, 1.0)
        data = (u - f + np.where(f > 0, f * np.log(ratio), 0.0)).sum()
    return float(data) + weight * tv


@pytest.fixture(scope="module")
def small(camera_crop) -> np.ndarray:
    _, noisy = camera_crop
    return noisy[40:72, 40:72].astype(np.float32)


@pytest.mark.parametrize("beta", [0.3, 0.5, 0.8, 1.0, 1.3, 2.0, 3.0])
def test_any_beta_is_finite_monotone_and_deterministic(small: np.ndarray, beta: float) -> None:
    first, record = tvdenoise.denoise(small, weight=0.1, beta=beta, return_record=True)
    second = tvdenoise.denoise(small, weight=0.1, beta=beta)
    assert np.isfinite(first).all()
    assert np.array_equal(first, second)  # deterministic on CPU
    assert record.local_minimum == (beta < 1)
    if beta != 1.0:  # descent (the primal-dual method at beta = 1 is not monotone)
        energies = record.energies
        assert all(b <= a * (1 + 1e-9) for a, b in itertools.pairwise(energies))
    # The recorded energy is that of the returned image under the default model (symmetric
    # TV), and it is lower than the noisy input's.
    assert record.energy == pytest.approx(
        _energy(first, small, 0.1, beta, record.eps), rel=ENERGY_RTOL
    )
    assert record.energy < _energy(small, small, 0.1, beta, record.eps)


@pytest.mark.parametrize("beta", [0.3, 0.6, 0.9])
def test_beta_below_one_starts_from_the_beta1_solution(small: np.ndarray, beta: float) -> None:
    # The beta < 1 stage starts at the beta = 1 minimiser and only descends from there.
    # Energies are of the model both stages solve (symmetric TV, the default).
    start = tvdenoise.denoise(small, weight=0.1, beta=1.0)
    result, record = tvdenoise.denoise(small, weight=0.1, beta=beta, return_record=True)
    start_energy = _energy(start, small, 0.1, beta, record.eps)
    assert record.energy == pytest.approx(
        _energy(result, small, 0.1, beta, record.eps), rel=ENERGY_RTOL
    )
    assert record.local_minimum and record.energy <= start_energy * (1 + ENERGY_RTOL)
    assert record.history[0].energy <= start_energy * (1 + ENERGY_RTOL)


@pytest.mark.parametrize(
    ("solver", "beta"),
    [("chambolle_pock", 1.0), ("auto", 1.0), ("accelerated", 1.5), ("gd", 1.5), ("adam", 1.5)],
)
@pytest.mark.parametrize("fidelity", ["l2", "l1", "poisson"])
def test_every_solver_fidelity_and_colour_coupling(
    astronaut_crop, solver: str, beta: float, fidelity: str
) -> None:
    _, noisy = astronaut_crop
    image = np.clip(noisy[:16, :16], 0, None).astype(np.float32)
    # Below about 2 / 16 an L1 result on 16x16 keeps every pixel: u = f for both couplings.
    weight = 0.8 if fidelity == "l1" else 0.1
    results = {}
    for color in ("vectorial", "channelwise"):
        u, record = tvdenoise.denoise(
            image,
            weight=weight,
            beta=beta,
            fidelity=fidelity,
            color=color,
            solver=solver,
            max_iter=60,
            return_record=True,
        )
        assert np.isfinite(u).all() and u.shape == image.shape
        if fidelity == "poisson":
            assert (u >= 0).all()
        energy = _energy(u, image, weight, beta, record.eps, fidelity, color)
        assert record.energy == pytest.approx(energy, rel=ENERGY_RTOL)
        start = np.clip(image, 1e-3, None)
        assert record.energy < _energy(start, image, weight, beta, record.eps, fidelity, color)
        results[color] = u
    assert not np.allclose(results["vectorial"], results["channelwise"], atol=1e-4)
