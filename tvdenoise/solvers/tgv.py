"""Second-order total generalised variation (TGV): exact Chambolle-Pock with a certified gap.

The energy (Bredies, Kunisch & Pock 2010), ``alpha1 = weight``, ``alpha0 = tgv_ratio *
weight``, with ``D`` the forward differences of :mod:`tvdenoise.ops`:

    E(u, w) = G(u) + alpha1 sum_pixels |D u - w| + alpha0 sum_pixels |E w|_F,
    TGV(u)  = min_w alpha1 ||D u - w||_1 + alpha0 ||E w||_1,

with ``w`` a vector field (one component per spatial axis and channel) and ``E w`` its
symmetrised gradient, ``(E w)_kl = 1/2 (D_l w_k + D_k w_l)``, measured in the Frobenius norm
(``|E w|_F^2 = sum_k (E w)_kk^2 + 2 sum_{k<l} (E w)_kl^2``; summed over the channels too for
vectorial colour). Where ``D_k u`` does not exist (the last entry along axis ``k``, 0 by the
Neumann boundary) ``w_k`` is 0 too, and the diagonal ``D_k w_k`` is taken over the entries
where ``w_k`` lives: so ``w = D u`` gives ``E w = 0`` for every affine ``u``, and TGV of an
affine image is exactly 0 (``tests/test_tgv.py``).

Storage: ``w`` has ``ndim`` components, the symmetric ``q`` ``ndim (ndim + 1) / 2`` (the
diagonal first, then ``(k, l)`` for ``k < l``). :func:`symmetric_gradient` is ``E`` and
:func:`symmetric_divergence` its negative adjoint, ``<E w, q>_F = -<w, div2 q>``.

Iteration (Chambolle & Pock 2011, Algorithm 1, theta = 1, fixed steps with
``tau sigma L^2 = 1``, on ``x = (u, w)``, ``y = (p, q)``, ``K x = (D u - w, E w)``):

    p <- project_{|p| <= alpha1}(p + sigma (D ubar - wbar))
    q <- project_{|q|_F <= alpha0}(q + sigma E wbar)
    u <- prox_{tau G}(u + tau div p);   w <- w + tau (p + div2 q)
    ubar, wbar <- 2 (u, w)_new - (u, w)_old

``L^2 = a (1 + e)`` with ``a = ||D||^2`` bound of :func:`tvdenoise.ops.difference_norm_squared`
and ``e = (1 + sqrt(1 + 4 a)) / (2 a)``: ``||K x||^2 <= (1 + e) ||D u||^2 + (1 + 1/e) ||w||^2
+ ||E w||^2`` and ``||E w||^2 <= sum_kl ||D_l w_k||^2 <= a ||w||^2``, so the factor on both
``||u||^2`` and ``||w||^2`` is ``a (1 + e)`` at this ``e``.

Certificate (dual feasibility). The dual problem is ``max -G*(div p)`` over ``|p| <= alpha1``,
``|q|_F <= alpha0`` with ``p = -div2 q`` where ``w`` lives (minimising the Lagrangian over
``w`` gives ``-inf`` otherwise). From the iterate's ``q`` the solver builds the pair
``(s p~, s q)`` with ``p~ = -div2 q`` and ``s = min(1, alpha1 / max |p~|)``: it satisfies every
constraint, so its dual value (``fidelity.dual(f, s div p~)``) is a lower bound on the minimum
``E*``, and ``(E(u, w) - dual) / E(u, w)`` bounds the relative suboptimality of the iterate
(weak duality; no bound on the domain is assumed). At the saddle point ``p* = -div2 q*`` and
``s = 1``, so the bound closes as the iterates converge.

References
----------
K. Bredies, K. Kunisch, T. Pock, "Total generalized variation", SIAM J. Imaging Sci. 3 (2010).
A. Chambolle, T. Pock, "A first-order primal-dual algorithm for convex problems with
applications to imaging", J. Math. Imaging Vis. 40 (2011).
"""

from __future__ import annotations

import math

import torch

from .._validate import DEFAULT_TGV_RATIO
from ..errors import InvalidParameterError
from ..ops import difference_norm_squared, divergence, gradient
from .base import Callback, Monitor, Problem, SolveRecord, relative_change, relative_gap

__all__ = [
    "DEFAULT_TGV_RATIO",
    "operator_norm_squared",
    "solve_tgv",
    "symmetric_components",
    "symmetric_divergence",
    "symmetric_gradient",
    "tgv_energy",
]


#: Primal step as a multiple of 1 / L (sigma = 1 / (tau L^2)). Measured on a 128x128 camera
#: crop (sigma 25, weight 0.08, ratio 2) to a certified relative gap of 3e-4: 1,180
#: iterations at 0.1, 1,670 at 0.3, 3,170 at 1; 0.03 does not reach it in 3,000. Accelerating
#: (Algorithm 2 on u; no theorem covers w) brings the energy to within 3e-4 of the minimum in
#: about 300 iterations, but the certificate then lags (1,500 to over 3,000), so it is not used.
STEP_BALANCE = 0.1


def symmetric_components(ndim: int) -> int:
    """Stored components of a symmetric ``ndim x ndim`` field: ``ndim (ndim + 1) / 2``."""
    return ndim * (ndim + 1) // 2


def _pairs(ndim: int) -> list[tuple[int, int]]:
    """The stored order of the symmetric components: the diagonal, then ``k < l``."""
    return [(k, k) for k in range(ndim)] + [(k, m) for k in range(ndim) for m in range(k + 1, ndim)]


def _lives(
    shape: tuple[int, ...], ndim: int, k: int, inset: int, like: torch.Tensor
) -> torch.Tensor:
    """1 where index ``i_k < n_k - inset`` along spatial axis ``k``, else 0 (broadcastable)."""
    n = shape[k]
    mask_shape = [1] * ndim
    mask_shape[k] = n
    mask = (torch.arange(n, device=like.device) < n - inset).to(like.dtype)
    return mask.view(mask_shape)


def field_mask(w: torch.Tensor, ndim: int) -> torch.Tensor:
    """``w`` (N, C, ndim, *spatial) with ``w_k`` set to 0 where ``D_k u`` does not exist."""
    spatial = tuple(w.shape[-ndim:])
    parts = [w.select(2, k) * _lives(spatial, ndim, k, 1, w) for k in range(ndim)]
    return torch.stack(parts, dim=2)


def symmetric_gradient(
    w: torch.Tensor, ndim: int = 2, spacing: tuple[float, ...] | None = None
) -> torch.Tensor:
    """The symmetrised gradient ``E w`` of a vector field ``w`` (N, C, ndim, *spatial).

    ``(E w)_kk = D_k w_k`` over the entries ``i_k < n_k - 1`` where ``w_k`` lives (0 at
    ``i_k >= n_k - 2``), ``(E w)_kl = 1/2 (D_l w_k + D_k w_l)``, after setting ``w_k`` to 0 at
    ``i_k = n_k - 1``. Returns (N, C, ndim (ndim + 1) / 2, *spatial), diagonal first.
    """
    spatial = tuple(w.shape[-ndim:])
    g = gradient(field_mask(w, ndim), ndim, spacing)  # g[:, :, k, m] = D_m w_k
    parts = []
    for k, m in _pairs(ndim):
        if k == m:
            parts.append(g[:, :, k, k] * _lives(spatial, ndim, k, 2, w))
        else:
            parts.append(0.5 * (g[:, :, k, m] + g[:, :, m, k]))
    return torch.stack(parts, dim=2)


def symmetric_divergence(
    q: torch.Tensor, ndim: int = 2, spacing: tuple[float, ...] | None = None
) -> torch.Tensor:
    """``div2 q``, the negative adjoint of :func:`symmetric_gradient` in the weighted
    Frobenius product: ``<E w, q>_F = sum_k <(E w)_kk, q_kk> + 2 sum_{k<l} <(E w)_kl, q_kl>
    = -<w, div2 q>`` for all ``w`` (N, C, ndim, *spatial) and ``q`` (N, C, ndim (ndim + 1) / 2,
    *spatial). Returns (N, C, ndim, *spatial)."""
    spatial = tuple(q.shape[-ndim:])
    full: list[list[torch.Tensor | None]] = [[None] * ndim for _ in range(ndim)]
    for index, (k, m) in enumerate(_pairs(ndim)):
        component = q.select(2, index)
        if k == m:
            full[k][k] = component * _lives(spatial, ndim, k, 2, q)
        else:
            full[k][m] = full[m][k] = component
    rows = [divergence(torch.stack(row, dim=2), ndim, spacing) for row in full]  # type: ignore[arg-type]
    return field_mask(torch.stack(rows, dim=2), ndim)


def _squared_norm(x: torch.Tensor, ndim: int, color: str, symmetric: bool) -> torch.Tensor:
    """Per-pixel squared magnitude of a vector field (``symmetric=False``) or of a symmetric
    field in the Frobenius norm (off-diagonal entries counted twice); summed over channels
    for vectorial colour. Shape (N, C or 1, 1, *spatial)."""
    squares = x * x
    if symmetric and x.shape[2] > ndim:
        factors = torch.ones(x.shape[2], dtype=x.dtype, device=x.device)
        factors[ndim:] = 2.0
        squares = squares * factors.view((1, 1, -1) + (1,) * ndim)
    dims: tuple[int, ...] = (2,) if color == "channelwise" else (1, 2)
    return squares.sum(dim=dims, keepdim=True)


def _project(
    x: torch.Tensor, radius: float, ndim: int, color: str, symmetric: bool
) -> torch.Tensor:
    magnitude = _squared_norm(x, ndim, color, symmetric).sqrt_().div_(radius).clamp_(min=1.0)
    return x / magnitude


def tgv_energy(
    problem: Problem, u: torch.Tensor, w: torch.Tensor, ratio: float | None = None
) -> torch.Tensor:
    """Per-sample ``E(u, w) = G(u) + alpha1 ||D u - w||_1 + alpha0 ||E w||_1`` in float64
    (``alpha1 = problem.weight``, ``alpha0 = ratio * alpha1``; ``ratio`` defaults to the
    problem's ``tgv_ratio``)."""
    ndim, spacing, color = problem.ndim, problem.spacing, problem.color
    alpha1 = problem.weight
    alpha0 = alpha1 * (problem.tgv_ratio if ratio is None else ratio)
    first = _squared_norm(gradient(u, ndim, spacing) - field_mask(w, ndim), ndim, color, False)
    second = _squared_norm(symmetric_gradient(w, ndim, spacing), ndim, color, True)
    dims = tuple(range(1, first.dim()))
    regular = alpha1 * first.double().sqrt().sum(dim=dims) + alpha0 * second.double().sqrt().sum(
        dim=dims
    )
    return problem.fidelity.value(u, problem.f) + regular


def operator_norm_squared(ndim: int, spacing: tuple[float, ...] | None = None) -> float:
    """The bound ``L^2 >= ||K||^2`` of the module docstring."""
    a = difference_norm_squared(ndim, spacing)
    e = (1.0 + math.sqrt(1.0 + 4.0 * a)) / (2.0 * a)
    return a * (1.0 + e)


def certificate(problem: Problem, q: torch.Tensor) -> torch.Tensor:
    """Per-sample lower bound on ``E*`` from the dual iterate ``q`` (module docstring)."""
    ndim, spacing = problem.ndim, problem.spacing
    p = -symmetric_divergence(q, ndim, spacing)
    largest = _squared_norm(p, ndim, problem.color, False).sqrt()
    largest = largest.amax(dim=tuple(range(1, largest.dim())))
    scale = torch.where(
        largest > problem.weight, problem.weight / largest.clamp(min=1e-300), 1.0
    ).to(p.dtype)
    z = divergence(p, ndim, spacing) * scale.view((-1,) + (1,) * (p.dim() - 2))
    return problem.fidelity.dual(problem.f, z)


def tgv_dual_components(ndim: int) -> int:
    """Components per channel and pixel of the state :func:`solve_tgv` keeps in ``dual``: ``p``
    (ndim), ``q`` (ndim (ndim + 1) / 2) and ``w`` (ndim)."""
    return 2 * ndim + symmetric_components(ndim)


def solve_tgv(
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
    pooled: bool = False,
) -> tuple[torch.Tensor, SolveRecord]:
    """Minimise the TGV energy exactly; stop when the certified relative gap <= tol.

    ``dual`` (N, C, :func:`tgv_dual_components`, *spatial) holds ``(p, q, w)`` to start from
    (``p`` and ``q`` need not be feasible: the first step projects them); on return it holds
    the final state, so a solve at a nearby weight can start from it. Without it, ``w``
    starts at ``D u``. The record's energy is ``E(u, w)`` at the returned ``u`` and its ``w``.

    ``pooled``: stop on the batch's total gap over its total energy (see
    :func:`tvdenoise.solvers.solve`).
    """
    f, ndim, spacing, color = problem.f, problem.ndim, problem.spacing, problem.color
    alpha1 = problem.weight
    alpha0 = alpha1 * problem.tgv_ratio
    fidelity = problem.fidelity
    norm = math.sqrt(operator_norm_squared(ndim, spacing))
    tau = STEP_BALANCE / norm if tau is None else tau
    sigma = 1.0 / (tau * norm * norm)
    u = f.clone() if init is None else init.to(f).clone()
    nsym = symmetric_components(ndim)
    if dual is None:
        p = torch.zeros_like(gradient(u, ndim))
        q = u.new_zeros((u.shape[0], u.shape[1], nsym, *u.shape[2:]))
        w = field_mask(gradient(u, ndim, spacing), ndim)
    else:
        expected = (f.shape[0], f.shape[1], tgv_dual_components(ndim), *f.shape[2:])
        if tuple(dual.shape) != expected:
            raise InvalidParameterError(
                f"dual must have shape {expected} for this problem, got {tuple(dual.shape)}"
            )
        state = dual.to(f)
        p, q, w = (
            state[:, :, :ndim].clone(),
            state[:, :, ndim : ndim + nsym].clone(),
            field_mask(state[:, :, ndim + nsym :], ndim),
        )
    u_bar, w_bar = u.clone(), w.clone()
    monitor = Monitor("tgv", max_iter, tol, callback, check_every, time_limit)
    iteration = 0
    for iteration in range(1, max_iter + 1):
        p = _project(
            p.add_(gradient(u_bar, ndim, spacing) - w_bar, alpha=sigma), alpha1, ndim, color, False
        )
        q = _project(
            q.add_(symmetric_gradient(w_bar, ndim, spacing), alpha=sigma), alpha0, ndim, color, True
        )
        u_previous, w_previous = u, w
        u = fidelity.prox(u + tau * divergence(p, ndim, spacing), f, tau)
        w = w + tau * field_mask(p + symmetric_divergence(q, ndim, spacing), ndim)
        u_bar = 2.0 * u - u_previous
        w_bar = 2.0 * w - w_previous
        if monitor.due(iteration):
            energy = tgv_energy(problem, u, w)
            lower = certificate(problem, q)
            gap = relative_gap(energy, lower, pooled)
            if monitor.report(iteration, energy, gap, relative_change(u, u_previous), gap):
                break
    if dual is not None:
        dual.copy_(torch.cat([p, q, w], dim=2))
    return u, monitor.record(iteration, eps=0.0)
