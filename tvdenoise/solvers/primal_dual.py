"""Chambolle-Pock primal-dual method for beta = 1: exact, with a primal-dual gap certificate.

Saddle-point form of ``min_u G(u) + weight * ||D u||`` (G the fidelity, any with a prox):

    min_u max_{|p| <= weight}  G(u) + <D u, p>

Iteration (Chambolle & Pock 2011, Algorithm 2 when G is gamma-strongly convex, as L2 is;
Algorithm 1 with theta = 1 and fixed steps, tau sigma ||D||^2 = 1, when it is not, as for L1
and Poisson):

    p     <- project_{|p| <= weight}(p + sigma * D ubar)
    u_new <- prox_{tau G}(u + tau * div p)
    theta  = 1 / sqrt(1 + 2 gamma tau);  tau <- theta tau;  sigma <- sigma / theta
    ubar  <- u_new + theta (u_new - u)

The dual objective is ``-G*(div p)``; ``fidelity.dual`` evaluates it at the feasible rescaled
``s p`` (see :mod:`tvdenoise.fidelity`), so the relative gap ``(E(u) - dual) / E(u)`` certifies
how close E(u) is to the minimum for every fidelity (for L2: ``-1/2 ||div p||^2 - <f, div p>``).

References
----------
A. Chambolle, T. Pock, "A first-order primal-dual algorithm for convex problems with
applications to imaging", J. Math. Imaging Vis. 40 (2011).
"""

from __future__ import annotations

import math

import torch

from .. import _validate
from ..errors import InvalidParameterError
from ..ops import (
    TV_STENCIL_WEIGHT,
    coupled_squared_norm,
    difference_norm_squared,
    divergence,
    gradient,
    spread,
)
from .base import (
    Callback,
    Monitor,
    Problem,
    SolveRecord,
    certified_distance,
    precision_gap,
    relative_change,
    relative_gap,
)


def unaccelerated_tau(weight: float, norm_squared: float) -> float:
    """Primal step without strong convexity: ``tau = c / ||D||``, ``sigma = 1 / (c ||D||)``.

    ``c = 0.1 / weight`` (within [0.01, 1]) balances the steps: the dual variable's size
    grows with the weight. Measured on a 128x128 camera crop to a gap of 1e-4: L1 (10 %
    salt-and-pepper) at weights 0.3 / 0.8 / 1.5 takes 890 / 820 / 1,600 iterations with
    c = 0.3 / 0.1 / 0.03, against 2,650 / 820 / 2,650 with c = 0.1 fixed and 890 to over 3,000
    with c = 0.3; Poisson (peak 30 counts) at 0.02 to 0.3 needs 30 to 470.
    """
    scale = min(max(0.1 / weight, 0.01), 1.0)
    return scale / math.sqrt(norm_squared)


def project_dual(p: torch.Tensor, radius: float, tv: str, color: str) -> torch.Tensor:
    """Project ``p`` (N, C, ndim, *spatial; 2 ndim for symmetric TV) onto the ball
    ``|p| <= radius`` of the dual TV norm (for symmetric TV, each stencil's part)."""
    magnitude = coupled_squared_norm(p, tv, color).sqrt_().div_(radius).clamp_(min=1.0)
    return p / spread(magnitude, tv, p.dim() - 3)


def dual_radius(problem: Problem) -> float:
    """The radius of the dual ball: ``weight``, or ``weight / 2`` for symmetric TV (each of
    its two stencils counts half)."""
    return problem.weight * TV_STENCIL_WEIGHT[problem.tv]


def start_dual(dual: torch.Tensor, problem: Problem) -> torch.Tensor:
    """The dual variable to start from: ``dual`` itself when it is contiguous on ``problem``'s
    device and dtype (a solver then updates it in place), else a contiguous copy. Its shape is
    checked; its values need not be feasible, since the first dual step projects onto
    ``|p| <= weight``."""
    n, c, *spatial = problem.f.shape
    expected = (n, c, problem.dual_components, *spatial)
    if tuple(dual.shape) != expected:
        raise InvalidParameterError(
            f"dual must have shape {expected} for this problem, got {tuple(dual.shape)}"
        )
    same = dual.dtype == problem.f.dtype and dual.device == problem.f.device
    if same and dual.is_contiguous():
        return dual
    return dual.to(problem.f).contiguous()


def solve_primal_dual(
    problem: Problem,
    *,
    max_iter: int,
    tol: float,
    callback: Callback | None = None,
    check_every: int = 10,
    time_limit: float | None = None,
    init: torch.Tensor | None = None,
    dual: torch.Tensor | None = None,
    tau: float | None = None,
    gamma: float | None = None,
    distance: float | None = None,
    pooled: bool = False,
) -> tuple[torch.Tensor, SolveRecord]:
    """Solve the beta = 1 problem exactly; stop when the relative primal-dual gap <= tol.

    ``dual`` is a starting dual variable; on return it holds the final one (see
    :func:`tvdenoise.solvers.solve`). ``distance``: stop also when the certified
    root-mean-square distance to the minimiser is at most this (strongly convex fidelities,
    L2; :func:`tvdenoise.solvers.base.certified_distance`).

    ``pooled``: stop on the batch's total gap over its total energy (see
    :func:`tvdenoise.solvers.solve`).
    """
    _validate.solver_applies("chambolle_pock", problem.beta, problem.eps)
    f = problem.f
    radius, tv, color = dual_radius(problem), problem.tv, problem.color
    ndim, spacing, symmetric = problem.ndim, problem.spacing, problem.symmetric
    weight = problem.weight
    fidelity = problem.fidelity
    if gamma is None:
        # 1/4 of the strong convexity: measured on camera (512^2, sigma 25) over weights 0.03
        # to 3 it needs 25 to 3,820 iterations to a gap of 1e-4, against 30 to 7,550 with 1/2.
        gamma = 0.25 * fidelity.strong_convexity
    norm_squared = difference_norm_squared(ndim, spacing, symmetric)
    if tau is None:
        # Strongly convex G: tau shrinks as the method accelerates; else fixed, balanced steps.
        tau = 0.5 if gamma > 0 else unaccelerated_tau(weight, norm_squared)
    sigma = 1.0 / (norm_squared * tau)
    u = f.clone() if init is None else init.clone()
    u_bar = u.clone()
    p = (
        torch.zeros_like(gradient(u, ndim, symmetric=symmetric))
        if dual is None
        else start_dual(dual, problem)
    )
    monitor = Monitor("chambolle_pock", max_iter, tol, callback, check_every, time_limit)

    iteration = 0
    for iteration in range(1, max_iter + 1):
        step = gradient(u_bar, ndim, spacing, symmetric)
        p = project_dual(p.add_(step, alpha=sigma), radius, tv, color)
        div_p = divergence(p, ndim, spacing, symmetric)
        u_previous = u
        u = fidelity.prox(u + tau * div_p, f, tau)
        theta = 1.0 / math.sqrt(1.0 + 2.0 * gamma * tau)
        tau *= theta
        sigma /= theta
        u_bar = u + theta * (u - u_previous)
        if monitor.due(iteration):
            energy = problem.energy(u)
            dual_value = fidelity.dual(f, div_p)
            gap = relative_gap(energy, dual_value, pooled)
            precise = distance is not None and (
                certified_distance(energy, dual_value, f[0].numel(), fidelity.strong_convexity)
                <= distance
            )
            change = relative_change(u, u_previous)
            precision = precision_gap(energy, f[0].numel(), fidelity.strong_convexity, distance)
            if monitor.report(iteration, energy, gap, change, gap, precise, precision):
                break
    if dual is not None:
        dual.copy_(p)
    return u, monitor.record(iteration, eps=0.0)
