"""Chambolle-Pock primal-dual method for beta = 1: exact, with a primal-dual gap certificate.

Saddle-point form of ``min_u G(u) + weight * ||D u||`` (G the fidelity):

    min_u max_{|p| <= weight}  G(u) + <D u, p>

Iteration (Chambolle & Pock 2011, Algorithm 2, accelerated by the strong convexity of G):

    p     <- project_{|p| <= weight}(p + sigma * D ubar)
    u_new <- prox_{tau G}(u + tau * div p)
    theta  = 1 / sqrt(1 + 2 gamma tau);  tau <- theta tau;  sigma <- sigma / theta
    ubar  <- u_new + theta (u_new - u)

For the L2 fidelity the dual objective is ``-1/2 ||div p||^2 - <f, div p>``, so the relative gap
``(E(u) - dual(p)) / E(u)`` certifies how close E(u) is to the minimum.

References
----------
A. Chambolle, T. Pock, "A first-order primal-dual algorithm for convex problems with
applications to imaging", J. Math. Imaging Vis. 40 (2011).
"""

from __future__ import annotations

import math

import torch

from .. import _validate
from ..ops import coupled_squared_norm, divergence, gradient
from .base import Callback, Monitor, Problem, SolveRecord, relative_change

# ||D||^2 <= 4 * ndim for forward differences with a Neumann boundary.
_NORM_SQUARED = 8.0


def project_dual(p: torch.Tensor, radius: float, tv: str, color: str) -> torch.Tensor:
    """Project ``p`` (N, C, 2, H, W) onto the ball ``|p| <= radius`` of the dual TV norm."""
    magnitude = coupled_squared_norm(p, tv, color).sqrt_().div_(radius).clamp_(min=1.0)
    return p / magnitude


def dual_value(f: torch.Tensor, div_p: torch.Tensor) -> torch.Tensor:
    """L2 dual objective ``-1/2 ||div p||^2 - <f, div p>`` per sample, in float64."""
    d = div_p.double()
    dims = tuple(range(1, d.dim()))
    return -0.5 * (d * d).sum(dim=dims) - (f.double() * d).sum(dim=dims)


def solve_primal_dual(
    problem: Problem,
    *,
    max_iter: int,
    tol: float,
    callback: Callback | None = None,
    check_every: int = 10,
    time_limit: float | None = None,
    init: torch.Tensor | None = None,
    tau: float = 0.5,
    gamma: float | None = None,
) -> tuple[torch.Tensor, SolveRecord]:
    """Solve the beta = 1 problem exactly; stop when the relative primal-dual gap <= tol."""
    _validate.solver_applies("chambolle_pock", problem.beta, problem.eps)
    f = problem.f
    weight, tv, color = problem.weight, problem.tv, problem.color
    fidelity = problem.fidelity
    if gamma is None:
        # 1/4 of the strong convexity: measured on camera (512^2, sigma 25) over weights 0.03
        # to 3 it needs 25 to 3,820 iterations to a gap of 1e-4, against 30 to 7,550 with 1/2.
        gamma = 0.25 * fidelity.strong_convexity
    sigma = 1.0 / (_NORM_SQUARED * tau)
    u = f.clone() if init is None else init.clone()
    u_bar = u.clone()
    p = torch.zeros_like(gradient(u))
    monitor = Monitor("chambolle_pock", max_iter, tol, callback, check_every, time_limit)

    iteration = 0
    for iteration in range(1, max_iter + 1):
        p = project_dual(p.add_(gradient(u_bar), alpha=sigma), weight, tv, color)
        div_p = divergence(p)
        u_previous = u
        u = fidelity.prox(u + tau * div_p, f, tau)
        theta = 1.0 / math.sqrt(1.0 + 2.0 * gamma * tau)
        tau *= theta
        sigma /= theta
        u_bar = u + theta * (u - u_previous)
        if monitor.due(iteration):
            energy = problem.energy(u)
            gaps = (energy - dual_value(f, div_p)) / energy.abs().clamp(min=1e-300)
            gap = float(gaps.max().clamp(min=0.0))
            if monitor.report(iteration, energy, gap, relative_change(u, u_previous), gap):
                break
    return u, monitor.record(iteration, eps=0.0)
