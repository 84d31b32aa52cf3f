"""Solvers for ``min_u fidelity(u, f) + weight * TV_beta(u)``, registered by name.

- ``rof``: exact solver for the L2 fidelity, beta = 1 (eps = 0) on images (N, C, H, W):
  Chambolle-Pock specialised, with a fused C kernel on CPU (PyTorch operations elsewhere);
  on CPU volumes (N, C, D, H, W) through its own fused kernel
  (:mod:`tvdenoise.solvers.rof_volume`).
- ``chambolle_pock``: exact primal-dual method for beta = 1 (eps = 0), stopped on the gap;
  any fidelity with a prox (L2, L1, Poisson), images or volumes.
- ``accelerated``: monotone accelerated gradient descent on the smoothed energy, any beta.
- ``gd`` / ``adam``: plain autograd descent with torch.optim, the slow general reference.
- ``tv="tgv"`` and ``tv="nonlocal"`` (with ``auto`` or ``chambolle_pock``): their own
  Chambolle-Pock solvers, :mod:`tvdenoise.solvers.tgv` and
  :mod:`tvdenoise.solvers.nonlocal_tv`, exact with a certified gap.
- ``auto``: ``rof`` where its fused kernel runs (CPU, a C compiler), else ``chambolle_pock``
  where it applies, else
  ``accelerated``; for beta < 1 it starts from the beta = 1 solution and reports the result
  as a local minimum.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch

from .. import _validate
from .accelerated import solve_accelerated
from .autograd import solve_autograd
from .base import Callback, IterationInfo, Problem, SolveRecord
from .multiscale import applies as multiscale_applies
from .multiscale import coarse_start
from .multiscale import levels_for as multiscale_levels
from .nonlocal_tv import solve_nonlocal
from .primal_dual import solve_primal_dual
from .rof import fused_available, solve_rof
from .rof_volume import available as volume_kernel_available
from .rof_volume import solve_rof_volume
from .tgv import solve_tgv

__all__ = [
    "SOLVERS",
    "Callback",
    "IterationInfo",
    "Problem",
    "SolveRecord",
    "scale_dual",
    "solve",
]

SolverFunction = Callable[..., tuple[torch.Tensor, SolveRecord]]

SOLVERS: dict[str, SolverFunction] = {
    "chambolle_pock": solve_primal_dual,
    "rof": solve_rof,
    "accelerated": solve_accelerated,
    "gd": functools.partial(solve_autograd, optimizer="sgd"),
    "adam": functools.partial(solve_autograd, optimizer="adam"),
}
assert ("auto", *SOLVERS) == _validate.SOLVER_NAMES


#: Iterations between gap checks of the fused rof kernel. A check is one sweep costing about
#: 2.2 iterations (benchmarks/bench_speed.py), and stopping overshoots by k/2 iterations on
#: average, so a run of n iterations pays 2.2 n / k + k / 2: least at k = sqrt(4.4 n), 25 for
#: the typical 140, where the checks are 8 % of the run (22 % at k = 10).
FUSED_CHECK_EVERY = 25
#: The fine level of a coarse-to-fine solve starts close to the minimiser and needs few
#: iterations: it checks at least this often.
MULTISCALE_CHECK_EVERY = 10


def scale_dual(problem: Problem, dual: torch.Tensor, factor: float) -> torch.Tensor:
    """A dual starting point for ``problem`` at ``factor`` times the weight: the dual variables
    scale with the weight (their ball's radius does); TGV's field ``w``, kept with them, is a
    primal variable and stays as it is."""
    if problem.tv != "tgv":
        return dual * factor
    scaled = dual.clone()
    scaled[:, :, : dual.shape[2] - problem.ndim] *= factor
    return scaled


def solve(
    problem: Problem,
    solver: str = "auto",
    *,
    max_iter: int,
    tol: float,
    callback: Callback | None = None,
    check_every: int | None = None,
    time_limit: float | None = None,
    init: torch.Tensor | None = None,
    dual: torch.Tensor | None = None,
    distance: float | None = None,
    multiscale: bool = False,
    pooled: bool = False,
) -> tuple[torch.Tensor, SolveRecord]:
    """Run the named solver (``"auto"`` picks the fastest exact choice) on ``problem``.

    ``check_every`` (energy, gap and callback every this many iterations) defaults to
    :data:`FUSED_CHECK_EVERY` for the fused ``rof`` kernel, whose iterations are so cheap that
    a check every 10 would be over 20 % of the run on a 512x512 image, and to 10 otherwise.

    For beta < 1 with ``"auto"`` (and no ``init``), the beta = 1 minimiser is computed first
    as the starting point; its iterations and seconds are included in the record, and the
    callback sees both stages (iteration numbers continue across them; the first stage reports
    the beta = 1 energy). The record's ``history`` holds the beta < 1 stage only, so its
    energies are all of the energy that was minimised.

    ``init`` is a starting point for the primal variable (``f`` if omitted). ``dual`` is one
    for the dual variable of the primal-dual solvers (``rof``, ``chambolle_pock``), of shape
    (N, C, ``problem.dual_components``, *spatial): ndim components, 2 ndim for symmetric TV
    (any values: the first dual step projects it onto its ball); on return it holds the final
    dual, so a solve at a nearby weight can start from both (:mod:`tvdenoise.auto_weight`
    does, with the dual scaled by the ratio of the weights). The other solvers have no dual
    variable and leave it untouched.

    ``distance`` (primal-dual solvers, L2 fidelity): stop also when the certified
    root-mean-square distance to the minimiser, ``sqrt(2 gap / n)``, is at most this; the
    record's ``stop_reason`` is then ``"precision"`` and its ``gap`` the relative gap reached.

    ``pooled``: judge the batch as one problem, stopping on its total gap over its total
    energy rather than on its largest per-sample relative gap (the automatic weight search's
    batch of tiles, whose risk is one sum); the record's ``gap`` is then that ratio. The
    ``gd`` and ``adam`` solvers, which have no gap, ignore it.

    ``multiscale`` (primal-dual solvers, L2, beta = 1, 2-D images of at least
    :data:`multiscale.MIN_PIXELS` pixels, no ``init`` or ``dual`` given): start from the
    solutions of coarser copies of the problem (:mod:`tvdenoise.solvers.multiscale`); the
    record's ``coarse_work`` counts their iterations in fine-level equivalents, its
    ``iterations`` and ``history`` are the fine level's. The fine level then checks its gap
    at least every 10 iterations.
    """
    if problem.tv in ("tgv", "nonlocal"):
        _validate.model_solver_applies(problem.tv, solver, problem.beta, problem.eps)
        model_options: dict[str, Any] = dict(
            max_iter=max_iter,
            tol=tol,
            callback=callback,
            check_every=check_every,
            time_limit=time_limit,
            init=init,
            dual=dual,
            pooled=pooled,
        )
        if problem.tv == "tgv":
            return solve_tgv(problem, distance=distance, **model_options)
        if check_every is None:
            model_options["check_every"] = 10
        return solve_nonlocal(problem, distance=distance, **model_options)
    if check_every is None:
        fused = solver in ("auto", "rof") and (
            fused_available(problem) or volume_kernel_available(problem)
        )
        check_every = FUSED_CHECK_EVERY if fused else 10
    coarse_work = 0.0
    if multiscale and init is None and dual is None and multiscale_applies(problem, solver):
        levels = multiscale_levels(*problem.f.shape[-2:])
        if levels:

            def solve_level(level: Problem, **level_options: Any) -> Any:
                return solve(level, solver, distance=None, **level_options)

            started = time.perf_counter()
            init, dual, coarse_work = coarse_start(
                problem, levels, solve_level, tol=tol, max_iter=max_iter, time_limit=time_limit
            )
            coarse_seconds = time.perf_counter() - started
            if time_limit is not None:
                time_limit = max(time_limit - coarse_seconds, 1e-9)
            check_every = min(check_every, MULTISCALE_CHECK_EVERY)
            u, record = solve(
                problem,
                solver,
                max_iter=max_iter,
                tol=tol,
                callback=callback,
                check_every=check_every,
                time_limit=time_limit,
                init=init,
                dual=dual,
                distance=distance,
                pooled=pooled,
            )
            record.coarse_work = coarse_work
            record.seconds += coarse_seconds
            return u, record
    options: dict[str, Any] = dict(
        max_iter=max_iter,
        tol=tol,
        callback=callback,
        check_every=check_every,
        time_limit=time_limit,
    )
    if solver in ("gd", "adam"):
        return SOLVERS[solver](problem, init=init, **options)
    options["pooled"] = pooled
    if solver in ("auto", "rof") and volume_kernel_available(problem):
        return solve_rof_volume(problem, init=init, dual=dual, distance=distance, **options)
    if solver in ("rof", "chambolle_pock"):
        return SOLVERS[solver](problem, init=init, dual=dual, distance=distance, **options)
    if solver != "auto":
        return SOLVERS[solver](problem, init=init, **options)
    if fused_available(problem):
        return solve_rof(problem, init=init, dual=dual, distance=distance, **options)
    if problem.beta == 1.0 and problem.eps == 0.0:
        return solve_primal_dual(problem, init=init, dual=dual, distance=distance, **options)
    if problem.beta >= 1.0 or init is not None:
        return solve_accelerated(problem, init=init, **options)
    # Non-convex: start from the convex beta = 1 minimiser, a good basin for the descent.
    convex = replace(problem, beta=1.0, eps=0.0)
    init, first = solve_primal_dual(convex, **{**options, "tol": max(tol, 1e-4)})
    remaining_time = None if time_limit is None else max(time_limit - first.seconds, 1e-9)
    u, second = solve_accelerated(
        problem,
        init=init,
        **{**options, "time_limit": remaining_time},
        iteration_offset=first.iterations,
    )
    second.iterations += first.iterations
    second.seconds += first.seconds
    return u, second
