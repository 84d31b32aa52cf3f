"""The fused volume kernel of the L2 ROF problem (tvdenoise.solvers.rof_volume).

Its iterates are the generic Chambolle-Pock solver's (same steps) to rounding, on every kind
of TV, colour coupling and grid spacing, odd sizes and axes of length 1; ``solver="auto"``
runs it on CPU volumes and falls back to the generic solver without it.
"""

from __future__ import annotations

import pytest
import torch

from tvdenoise.fidelity import get_fidelity
from tvdenoise.solvers import Problem, rof_volume, solve
from tvdenoise.solvers.primal_dual import solve_primal_dual

pytestmark = pytest.mark.skipif(rof_volume.load() is None, reason="no C compiler")


def _problem(shape, tv, color, spacing, dtype=torch.float64, weight=0.1, seed=0) -> Problem:
    f = torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    return Problem(f, weight, 1.0, tv, color, get_fidelity("l2"), 0.0, spacing)


@pytest.mark.parametrize("tv", ["isotropic", "anisotropic", "symmetric"])
@pytest.mark.parametrize("color", ["vectorial", "channelwise"])
@pytest.mark.parametrize("spacing", [None, (2.0, 1.0, 0.5)])
@pytest.mark.parametrize(
    "shape", [(2, 3, 5, 7, 6), (1, 1, 1, 9, 4), (1, 2, 3, 1, 11), (1, 1, 4, 5, 1)]
)
def test_iterates_equal_the_generic_solver(tv, color, spacing, shape) -> None:
    problem = _problem(shape, tv, color, spacing)
    # The generic solver starts with tau 0.5; with the same steps the two iterate alike.
    ours, record = rof_volume.solve_rof_volume(
        problem, max_iter=37, tol=0.0, tau=0.5, check_every=10
    )
    theirs, _ = solve_primal_dual(problem, max_iter=37, tol=0.0, tau=0.5)
    assert record.iterations == 37
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-12)


def test_float32_and_the_dual_start_are_handled() -> None:
    problem = _problem((1, 3, 4, 9, 10), "symmetric", "vectorial", (1.5, 1.0, 1.0))
    reference, _ = rof_volume.solve_rof_volume(problem, max_iter=20000, tol=1e-10)
    single = Problem(
        problem.f.float(),
        *[
            getattr(problem, k)
            for k in ("weight", "beta", "tv", "color", "fidelity", "eps", "spacing")
        ],
    )
    u, record = rof_volume.solve_rof_volume(single, max_iter=5000, tol=1e-5)
    assert record.converged and u.dtype == torch.float32
    assert float((u.double() - reference).abs().max()) < 1e-3
    # A warm start from a dual (its unreachable entries garbage) is updated in place.
    dual = torch.full((1, 3, 6, 4, 9, 10), 0.3, dtype=torch.float64)
    warm, _ = rof_volume.solve_rof_volume(
        problem, max_iter=20000, tol=1e-10, dual=dual, init=reference
    )
    assert float((warm - reference).abs().max()) < 1e-5
    assert (
        float(dual[:, :, 0, -1].abs().max()) == 0.0
        and float(dual[:, :, 5, :, :, 0].abs().max()) == 0.0
    )


def test_precision_stop_certifies_the_distance() -> None:
    problem = _problem((1, 1, 6, 20, 20), "symmetric", "vectorial", None)
    exact, _ = rof_volume.solve_rof_volume(problem, max_iter=50000, tol=1e-12)
    distance = 0.5 / 255
    u, record = rof_volume.solve_rof_volume(problem, max_iter=5000, tol=1e-9, distance=distance)
    assert record.stop_reason == "precision"
    assert float(torch.sqrt(torch.mean((u - exact) ** 2))) <= distance


def test_auto_runs_the_kernel_on_volumes_and_falls_back_without_it(monkeypatch) -> None:
    import tvdenoise.solvers as solvers

    problem = _problem((1, 1, 4, 8, 8), "symmetric", "vectorial", (2.0, 1.0, 1.0))
    calls = []
    real = solvers.solve_rof_volume

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(solvers, "solve_rof_volume", counted)
    fused, fused_record = solve(problem, "auto", max_iter=20000, tol=1e-9)
    assert calls and fused_record.solver == "rof"
    monkeypatch.setattr(rof_volume, "load", lambda: None)
    generic, generic_record = solve(problem, "auto", max_iter=20000, tol=1e-9)
    assert generic_record.solver == "chambolle_pock"
    assert float((fused - generic).abs().max()) < 1e-4


@pytest.mark.parametrize("tv", ["isotropic", "anisotropic", "symmetric"])
@pytest.mark.parametrize("color", ["vectorial", "channelwise"])
def test_the_kernels_gap_is_the_energy_and_dual_value_of_the_model(tv, color) -> None:
    # The record's energy is the kernel's measure; it must equal the model's energy as
    # PyTorch computes it (problem.energy), and the relative gap must match the dual value
    # computed from the returned dual (fidelity.dual of its divergence).
    from tvdenoise.ops import divergence
    from tvdenoise.solvers.base import relative_gap

    problem = _problem((2, 3, 4, 6, 5), tv, color, (2.0, 1.0, 0.5), seed=3)
    dual = torch.zeros((2, 3, problem.dual_components, 4, 6, 5), dtype=torch.float64)
    u, record = rof_volume.solve_rof_volume(
        problem, max_iter=15, tol=0.0, check_every=15, dual=dual
    )
    energy = problem.energy(u)
    assert record.energy == pytest.approx(float(energy.sum()), rel=1e-12)
    dual_value = problem.fidelity.dual(
        problem.f, divergence(dual, 3, problem.spacing, problem.symmetric)
    )
    assert record.gap == pytest.approx(relative_gap(energy, dual_value, False), rel=1e-9)
