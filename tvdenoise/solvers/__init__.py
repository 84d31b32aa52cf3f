"""Solvers for ``min_u fidelity(u, f) + weight * TV_beta(u)``, registered by name.

- ``chambolle_pock``: exact primal-dual method for beta = 1 (eps = 0), stopped on the gap.
- ``accelerated``: monotone accelerated gradient descent on the smoothed energy, any beta.
- ``gd`` / ``adam``: plain autograd descent with torch.optim, the slow general reference.
- ``auto``: ``chambolle_pock`` where it applies, else ``accelerated``; for beta < 1 it starts
  from the beta = 1 solution and reports the result as a local minimum.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch

from .accelerated import solve_accelerated
from .autograd import solve_autograd
from .base import Callback, IterationInfo, Problem, SolveRecord
from .primal_dual import solve_primal_dual

__all__ = ["SOLVERS", "Callback", "IterationInfo", "Problem", "SolveRecord", "solve"]

SolverFunction = Callable[..., tuple[torch.Tensor, SolveRecord]]

SOLVERS: dict[str, SolverFunction] = {
    "chambolle_pock": solve_primal_dual,
    "accelerated": solve_accelerated,
    "gd": functools.partial(solve_autograd, optimizer="sgd"),
    "adam": functools.partial(solve_autograd, optimizer="adam"),
}
SOLVER_NAMES = ("auto", *SOLVERS)


def solve(
    problem: Problem,
    solver: str = "auto",
    *,
    max_iter: int,
    tol: float,
    callback: Callback | None = None,
    check_every: int = 10,
    time_limit: float | None = None,
    init: torch.Tensor | None = None,
) -> tuple[torch.Tensor, SolveRecord]:
    """Run the named solver (``"auto"`` picks the fastest exact choice) on ``problem``."""
    options: dict[str, Any] = dict(
        max_iter=max_iter,
        tol=tol,
        callback=callback,
        check_every=check_every,
        time_limit=time_limit,
    )
    exact_beta_one = problem.beta == 1.0 and problem.eps == 0.0
    if solver == "chambolle_pock" and not exact_beta_one:
        from ..errors import InvalidParameterError

        raise InvalidParameterError(
            "solver 'chambolle_pock' needs beta = 1 and eps = 0, got "
            f"beta={problem.beta}, eps={problem.eps}; use solver 'auto' or 'accelerated'"
        )
    if solver != "auto":
        return SOLVERS[solver](problem, init=init, **options)
    if exact_beta_one:
        return solve_primal_dual(problem, init=init, **options)
    if problem.beta < 1.0 and init is None:
        # Non-convex: start from the convex beta = 1 minimiser, a good basin for the descent.
        start = Problem(problem.f, problem.weight, 1.0, problem.tv, problem.color, problem.fidelity)
        init, _ = solve_primal_dual(start, max_iter=max_iter, tol=max(tol, 1e-4))
    return solve_accelerated(problem, init=init, **options)
