"""Nonlocal TV: Chambolle-Pock on the graph gradient, exact, with a certified gap.

Saddle-point form of ``min_u G(u) + weight * NLTV(u)`` (:mod:`tvdenoise.nonlocal_graph`),
``G`` the fidelity:

    min_u max_{|p_i| <= weight}  G(u) + <G_w u, p>

with ``|p_i|`` the Euclidean norm of pixel ``i``'s ``K`` edge values (and its channels, for
vectorial colour). The iteration is the one of :mod:`tvdenoise.solvers.primal_dual` with the
graph gradient and its adjoint in place of the grid's (Algorithm 2, accelerated, for the
strongly convex L2 term; Algorithm 1 otherwise), steps with ``tau sigma ||G_w||^2 = 1`` from
the graph's bound :meth:`NonlocalGraph.norm_squared`. ``p`` stays in the dual ball, so the
dual value ``-G*(div p)`` (``fidelity.dual``) bounds the minimum from below and the relative
gap certifies the energy, as for local TV.
"""

from __future__ import annotations

import math

import torch

from ..errors import InvalidParameterError
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
from .primal_dual import unaccelerated_tau

__all__ = ["solve_nonlocal"]


def _project(p: torch.Tensor, radius: float, color: str) -> torch.Tensor:
    dims: tuple[int, ...] = (2,) if color == "channelwise" else (1, 2)
    magnitude = p.square().sum(dim=dims, keepdim=True).sqrt_().div_(radius).clamp_(min=1.0)
    return p / magnitude


def solve_nonlocal(
    problem: Problem,
    *,
    max_iter: int,
    tol: float,
    callback: Callback | None = None,
    check_every: int = 10,
    time_limit: float | None = None,
    init: torch.Tensor | None = None,
    dual: torch.Tensor | None = None,
    distance: float | None = None,
    pooled: bool = False,
) -> tuple[torch.Tensor, SolveRecord]:
    """Solve nonlocal TV exactly; stop when the relative primal-dual gap <= tol.

    ``dual`` (N, C, K, H, W) is a starting dual variable; on return it holds the final one.
    ``distance``: stop also when the certified RMS distance to the minimiser is at most this.

    ``pooled``: stop on the batch's total gap over its total energy (see
    :func:`tvdenoise.solvers.solve`).
    """
    graph = problem.nonlocal_graph
    f, color, weight, fidelity = problem.f, problem.color, problem.weight, problem.fidelity
    if f.dim() != 4 or graph.index.shape[0] != f.shape[0]:
        raise InvalidParameterError(
            f"tv='nonlocal' needs 2-D images with one graph each; got images {tuple(f.shape)} "
            f"and graphs for {graph.index.shape[0]}"
        )
    norm_squared = graph.norm_squared()
    gamma = 0.25 * fidelity.strong_convexity
    # The grid solver's tau = 0.5 is for ||D||^2 = 8; scaled so that tau and sigma keep the
    # same balance on a graph with another norm bound.
    tau = (
        0.5 * math.sqrt(8.0 / norm_squared)
        if gamma > 0
        else unaccelerated_tau(weight, norm_squared)
    )
    sigma = 1.0 / (norm_squared * tau)
    u = f.clone() if init is None else init.to(f).clone()
    u_bar = u.clone()
    n, c, h, w = f.shape
    if dual is None:
        p = f.new_zeros((n, c, graph.neighbours, h, w))
    else:
        if tuple(dual.shape) != (n, c, graph.neighbours, h, w):
            raise InvalidParameterError(
                f"dual must have shape {(n, c, graph.neighbours, h, w)} for this problem, got "
                f"{tuple(dual.shape)}"
            )
        p = dual.to(f).clone()
    monitor = Monitor("nonlocal", max_iter, tol, callback, check_every, time_limit)
    iteration = 0
    for iteration in range(1, max_iter + 1):
        p = _project(p.add_(graph.gradient(u_bar), alpha=sigma), weight, color)
        div_p = graph.divergence(p)
        u_previous = u
        u = fidelity.prox(u + tau * div_p, f, tau)
        theta = 1.0 / math.sqrt(1.0 + 2.0 * gamma * tau)
        tau *= theta
        sigma /= theta
        u_bar = u + theta * (u - u_previous)
        if monitor.due(iteration):
            energy = fidelity.value(u, f) + weight * graph.total_variation(u, color)
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
