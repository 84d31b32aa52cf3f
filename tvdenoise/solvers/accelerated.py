"""Accelerated gradient descent with backtracking on the smoothed energy, for any beta.

Minimises ``E(u) = fidelity(u, f) + weight * sum (|D u|^2 + eps^2)^(beta / 2)`` (the coupling of
``|D u|^2`` over directions and channels as in :mod:`tvdenoise.tv`), whose gradient is

    grad E(u) = grad fidelity(u) - weight * div( beta * (|D u|^2 + eps^2)^(beta/2 - 1) * D u ).

Nesterov/FISTA momentum with a backtracking estimate of the Lipschitz constant (it may also
shrink by a factor each step so steps do not stay needlessly small), and adaptive restart
(O'Donoghue & Candes 2015) whenever the energy would rise, so the energy decreases monotonically.

Fidelities that are not smooth (L1, and Poisson, whose gradient ``1 - f / u`` is unbounded near
0) are not smoothed: the step becomes a proximal-gradient (FISTA) step,
``u = prox_{G / L}(y - grad R(y) / L)`` with ``R`` the smoothed TV term alone, and the
backtracking tests the descent lemma on ``R``. The prox keeps Poisson iterates positive and
handles L1's kink exactly; only the TV term is smoothed (by ``eps``).

Stopping: for beta >= 1 the smoothed energy is convex and the L2 fidelity makes it 1-strongly
convex, so ``E(u) - E* <= ||grad E(u)||^2 / 2``; ``||grad E(u)||^2 / (2 E(u))`` is then a certified
bound on the relative energy gap and is the ``gap`` reported and compared with ``tol``. For
beta < 1 the energy is not convex: the same quantity is only a stationarity measure, the result
is a local minimum, and the record says so. For the proximal step (L1, Poisson) the measure is
the same expression with the gradient mapping ``L (u - prox_{G/L}(u - grad R(u) / L))`` in place
of the gradient: zero exactly at a minimiser, but not a certified gap (``gap`` is None).

References
----------
A. Beck, M. Teboulle, "A fast iterative shrinkage-thresholding algorithm for linear inverse
problems", SIAM J. Imaging Sci. 2 (2009); B. O'Donoghue, E. Candes, "Adaptive restart for
accelerated gradient schemes", Found. Comput. Math. 15 (2015).
"""

from __future__ import annotations

import math

import torch

from ..ops import TV_STENCIL_WEIGHT, coupled_squared_norm, divergence, gradient, spread
from .base import Callback, Monitor, Problem, SolveRecord, relative_change


def regularisation_gradient(problem: Problem, u: torch.Tensor) -> torch.Tensor:
    """Gradient of ``weight * TV_beta`` (smoothed by ``eps``) at ``u`` (N, C, *spatial)."""
    symmetric = problem.symmetric
    g = gradient(u, problem.ndim, problem.spacing, symmetric)
    s = coupled_squared_norm(g, problem.tv, problem.color)
    if problem.eps > 0:
        s = s + problem.eps**2
    exponent = problem.beta / 2.0 - 1.0
    if exponent >= 0:
        factor = s.pow(exponent)
    else:
        # Where s = 0 (only when eps = 0) the term's gradient is taken as 0 (a subgradient).
        positive = s > 0
        factor = torch.where(positive, torch.where(positive, s, 1.0).pow(exponent), 0.0)
    flux = g * spread(factor, problem.tv, problem.ndim)
    scale = problem.weight * problem.beta * TV_STENCIL_WEIGHT[problem.tv]
    return -scale * divergence(flux, problem.ndim, problem.spacing, symmetric)


def energy_gradient(problem: Problem, u: torch.Tensor) -> torch.Tensor:
    """Gradient of the smoothed energy at ``u`` (smooth fidelities only)."""
    return problem.fidelity.gradient(u, problem.f) + regularisation_gradient(problem, u)


def _batch_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.double() * b.double()).sum(dim=tuple(range(1, a.dim())))


def solve_accelerated(
    problem: Problem,
    *,
    max_iter: int,
    tol: float,
    callback: Callback | None = None,
    check_every: int = 10,
    time_limit: float | None = None,
    init: torch.Tensor | None = None,
    iteration_offset: int = 0,
    pooled: bool = False,
) -> tuple[torch.Tensor, SolveRecord]:
    """Minimise the smoothed energy by monotone accelerated gradient descent.

    ``iteration_offset`` is added to the iteration numbers reported to the callback (for a
    solve that continues another one).

    ``pooled``: stop on the batch's total bound over its total energy (see
    :func:`tvdenoise.solvers.solve`).
    """
    f = problem.f
    fidelity = problem.fidelity
    proximal = not fidelity.smooth
    convex = problem.beta >= 1.0
    # For a mu-strongly convex energy, E(u) - E* <= ||grad E(u)||^2 / (2 mu).
    mu = fidelity.strong_convexity
    certified = convex and mu > 0 and not proximal
    monitor = Monitor("accelerated", max_iter, tol, callback, check_every, time_limit)
    u = f.clone() if init is None else init.clone()
    if proximal:
        u = fidelity.project(u)

    # The smooth part S descends by gradient steps: the whole energy for a smooth fidelity,
    # the TV term alone when the fidelity enters through its prox.
    def smooth_value(v: torch.Tensor) -> torch.Tensor:
        return problem.regularisation(v) if proximal else problem.energy(v)

    def smooth_gradient(v: torch.Tensor) -> torch.Tensor:
        return regularisation_gradient(problem, v) if proximal else energy_gradient(problem, v)

    def forward_backward(v: torch.Tensor, grad: torch.Tensor, lipschitz: float) -> torch.Tensor:
        return fidelity.prox(v - grad / lipschitz, f, 1.0 / lipschitz)

    u_previous = u
    energy_u = problem.energy(u)
    smooth_u = smooth_value(u) if proximal else energy_u
    y = u
    energy_y = smooth_u  # S(y)
    t = 1.0
    lipschitz = 1.0
    iteration = 0
    reported = -1

    def evaluate(iteration: int) -> bool:
        grad_u = smooth_gradient(u)
        if proximal:  # the gradient mapping
            grad_u = lipschitz * (u - forward_backward(u, grad_u, lipschitz))
        scale = 2.0 * (mu if certified else 1.0)
        squares = _batch_dot(grad_u, grad_u)
        if pooled:
            measure = float(squares.sum()) / max(scale * float(energy_u.abs().sum()), 1e-300)
        else:
            measure = float((squares / (scale * energy_u.abs().clamp(min=1e-300))).max())
        return monitor.report(
            iteration + iteration_offset,
            energy_u,
            measure if certified else None,
            relative_change(u, u_previous),
            measure,
        )

    for iteration in range(1, max_iter + 1):
        grad_y = smooth_gradient(y)
        grad_sq = _batch_dot(grad_y, grad_y)
        # Backtracking: accept when the sufficient-decrease condition holds for every sample.
        accepted = False
        for _ in range(60):
            if proximal:
                candidate = forward_backward(y, grad_y, lipschitz)
                step = candidate - y
                smooth_c = smooth_value(candidate)
                decrease = (
                    energy_y
                    + _batch_dot(grad_y, step)
                    + (0.5 * lipschitz) * _batch_dot(step, step)
                    + 1e-12 * energy_y.abs()
                )
            else:
                candidate = y - grad_y / lipschitz
                smooth_c = problem.energy(candidate)
                decrease = energy_y - grad_sq / (2.0 * lipschitz) + 1e-12 * energy_y.abs()
            if bool((smooth_c <= decrease).all()):
                accepted = True
                break
            lipschitz *= 2.0
        energy_c = smooth_c + fidelity.value(candidate, f) if proximal else smooth_c
        rises = bool((energy_c > energy_u).any())
        if rises and y is not u:
            # Momentum overshot: restart from u with a plain gradient step next time.
            t = 1.0
            y, energy_y = u, smooth_u
            continue
        if not accepted or rises:
            # No step lowers the energy any more (rounding at this precision): stop here.
            monitor.stop_reason = "line_search"
            break
        t_next = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
        u_previous = u
        u, energy_u = candidate, energy_c
        smooth_u = smooth_c
        y = u + ((t - 1.0) / t_next) * (u - u_previous)
        energy_y = smooth_value(y)
        t = t_next
        lipschitz *= 0.9
        if monitor.due(iteration):
            reported = iteration
            if evaluate(iteration):
                break
    if reported != iteration:  # the last iteration was a restart or a failed line search
        evaluate(iteration)
    return u, monitor.record(iteration, eps=problem.eps, local_minimum=not convex)
