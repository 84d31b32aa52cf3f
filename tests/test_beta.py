"""Any beta in [0.3, 3], and every solver with every fidelity and colour coupling."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import tvdenoise
from tvdenoise.fidelity import get_fidelity
from tvdenoise.solvers import Problem


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
    # Lower energy than the noisy input under the energy that was minimised.
    problem = Problem(
        torch.from_numpy(small)[None, None].double(),
        0.1,
        beta,
        "isotropic",
        "vectorial",
        get_fidelity("l2"),
        record.eps,
    )
    assert record.energy < float(problem.energy(problem.f)[0])


@pytest.mark.parametrize("beta", [0.3, 0.6, 0.9])
def test_beta_below_one_starts_from_the_beta1_solution(small: np.ndarray, beta: float) -> None:
    # The beta < 1 stage starts at the beta = 1 minimiser and only descends from there.
    start = tvdenoise.denoise(small, weight=0.1, beta=1.0)
    _, record = tvdenoise.denoise(small, weight=0.1, beta=beta, return_record=True)
    problem = Problem(
        torch.from_numpy(small)[None, None].double(),
        0.1,
        beta,
        "isotropic",
        "vectorial",
        get_fidelity("l2"),
        record.eps,
    )
    start_energy = float(problem.energy(torch.from_numpy(start)[None, None].double())[0])
    assert record.local_minimum and record.energy <= start_energy * (1 + 1e-6)
    assert record.history[0].energy <= start_energy * (1 + 1e-6)


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
        problem = Problem(
            torch.from_numpy(image.transpose(2, 0, 1).copy())[None].double(),
            weight,
            beta,
            "isotropic",
            color,
            get_fidelity(fidelity),
            record.eps,
        )
        assert record.energy < float(problem.energy(problem.f.clamp(min=1e-3))[0])
        results[color] = u
    assert not np.allclose(results["vectorial"], results["channelwise"], atol=1e-4)
