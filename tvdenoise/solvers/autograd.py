"""Plain autograd descent with ``torch.optim`` (SGD or Adam) on the smoothed energy.

The slow, general reference path: it needs nothing but the energy's value, so it serves any
beta and any fidelity and checks the specialised solvers. A fidelity that is not smooth (L1,
Poisson) is handled by its prox with SGD (each step on the TV term is followed by the prox with
the step size: proximal gradient, which also keeps Poisson iterates positive); Adam, whose steps
are bounded by its learning rate, differentiates it (a subgradient for L1) and projects Poisson
iterates onto u > 0 after each step. Stops
when the relative change of ``u`` over an evaluation window falls to ``tol`` (a heuristic: slow
methods can look converged; prefer the exact solvers when accuracy matters).
"""

from __future__ import annotations

import torch

from ..ops import difference_norm_squared
from .base import Callback, Monitor, Problem, SolveRecord, relative_change


def default_step(problem: Problem) -> float:
    """``1 / L`` for a bound ``L`` on the curvature of the smoothed energy (images in [0, 1])."""
    beta, eps = problem.beta, problem.eps
    if beta < 2:
        curvature = beta * max(eps, 1e-3) ** (beta - 2.0)
    else:
        curvature = beta * (beta - 1.0) * (8.0 + eps * eps) ** (beta / 2.0 - 1.0)
    norm_squared = difference_norm_squared(problem.ndim, problem.spacing)
    # The fidelity's curvature: 1 for L2; L1 and Poisson have none bounded, take 1 likewise.
    return 1.0 / (1.0 + norm_squared * problem.weight * curvature)


def solve_autograd(
    problem: Problem,
    *,
    max_iter: int,
    tol: float,
    callback: Callback | None = None,
    check_every: int = 10,
    time_limit: float | None = None,
    init: torch.Tensor | None = None,
    optimizer: str = "sgd",
    lr: float | None = None,
) -> tuple[torch.Tensor, SolveRecord]:
    """Minimise the (smoothed) energy with ``torch.optim.SGD`` or ``torch.optim.Adam``."""
    start = problem.f if init is None else init
    u = start.detach().clone().requires_grad_(True)
    fidelity = problem.fidelity
    use_prox = not fidelity.smooth and optimizer != "adam"
    if optimizer == "adam":
        step = 1e-3 if lr is None else lr
        opt: torch.optim.Optimizer = torch.optim.Adam([u], lr=step)
    else:
        step = default_step(problem) if lr is None else lr
        opt = torch.optim.SGD([u], lr=step)
    monitor = Monitor(
        "adam" if optimizer == "adam" else "gd", max_iter, tol, callback, check_every, time_limit
    )
    last_checked = u.detach().clone()
    iteration = 0
    for iteration in range(1, max_iter + 1):
        opt.zero_grad(set_to_none=True)
        energy = problem.regularisation(u) if use_prox else problem.energy(u)
        energy.sum().backward()
        opt.step()
        if not fidelity.smooth:
            with torch.no_grad():
                u.copy_(fidelity.prox(u, problem.f, step) if use_prox else fidelity.project(u))
        if monitor.due(iteration):
            with torch.no_grad():
                change = relative_change(u.detach(), last_checked)
                last_checked = u.detach().clone()
                if monitor.report(iteration, problem.energy(u), None, change, change):
                    break
    return u.detach(), monitor.record(iteration, eps=problem.eps, local_minimum=problem.beta < 1.0)
