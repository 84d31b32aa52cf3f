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

Iteration (Chambolle & Pock 2011, on ``x = (u, w)``, ``y = (p, q)``, ``K x = (D u - w, E w)``,
``tau sigma L^2 = 1`` throughout):

    p <- project_{|p| <= alpha1}(p + sigma (D ubar - wbar))
    q <- project_{|q|_F <= alpha0}(q + sigma E wbar)
    u <- prox_{tau G}(u + tau div p);   w <- w + tau (p + div2 q)
    ubar, wbar <- (u, w)_new + theta ((u, w)_new - (u, w)_old)

in two phases. Where the fidelity is strongly convex (L2), a first phase takes Algorithm 2's
step rule (``theta = 1 / sqrt(1 + 2 gamma tau)``, ``tau *= theta``, ``sigma /= theta``) from
``tau = ACCELERATED_BALANCE / L``: only ``u``'s part of the energy is strongly convex, so no
theorem covers it, but it brings ``(u, w)`` close to the minimiser in a few hundred iterations.
Once its certified gap has reached no new low for ``STALL_ITERATIONS`` iterations, the solver
goes on from that state with Algorithm 1 (``theta = 1``, fixed ``tau = STEP_BALANCE / L``),
which converges from any starting point: the solve converges, and the certificate below holds
whatever the steps. On CPU with the L2 fidelity on 2-D images without grid steps the
iterations run in a fused C kernel (``_tgv_kernel.c``, loaded by
:func:`tvdenoise.solvers.native.load_tgv`), the same iteration as the PyTorch operations
used elsewhere.

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
``s = 1``, so the bound closes as the iterates converge. One pixel where ``|p~|`` exceeds
``alpha1`` would shrink all of ``q`` by the global ``s``; so ``q`` is first shrunk locally
around such pixels (:func:`feasible_dual`), which costs the dual value far less.

References
----------
K. Bredies, K. Kunisch, T. Pock, "Total generalized variation", SIAM J. Imaging Sci. 3 (2010).
A. Chambolle, T. Pock, "A first-order primal-dual algorithm for convex problems with
applications to imaging", J. Math. Imaging Vis. 40 (2011).
"""

from __future__ import annotations

import ctypes
import math

import torch

from .. import _validate
from .._validate import DEFAULT_TGV_RATIO
from ..errors import InvalidParameterError
from ..ops import difference_norm_squared, divergence, gradient
from . import native
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
from .rof import _last_theta

__all__ = [
    "DEFAULT_TGV_RATIO",
    "native_kernel",
    "operator_norm_squared",
    "solve_tgv",
    "symmetric_components",
    "symmetric_divergence",
    "symmetric_gradient",
    "tgv_energy",
]


BACKENDS = ("auto", "native", "torch")

#: Primal step of the plain phase as a multiple of 1 / L (sigma = 1 / (tau L^2)). Measured
#: with the global certificate alone on a 128x128 camera crop (sigma 25, weight 0.08, ratio
#: 2) to a certified relative gap of 3e-4: 1,180 iterations at 0.1, 1,670 at 0.3, 3,170 at 1;
#: 0.03 does not reach it in 3,000. On the 256x256 crop of benchmarks/RESULTS.md (weight 0.09)
#: with the local repair: 640 at 0.1, 940 at 0.2, 1,580 at 0.05.
STEP_BALANCE = 0.1
#: Local repair passes of the dual iterate before the certificate's global scale
#: (:func:`feasible_dual`). Plain phase only, 256x256 crop to a gap of 3e-4: 1,320 iterations
#: with the global scale alone, 870 after 3 passes, 640 after 8, 610 after 30.
REPAIR_PASSES = 8
#: The accelerated first phase: Algorithm 2's step rule with ``gamma = ACCELERATION * mu``
#: from ``tau = ACCELERATED_BALANCE / L``, until the certified gap has not reached a new
#: low for ``STALL_ITERATIONS`` iterations; then the plain iteration at ``STEP_BALANCE``.
#: Same crop: 580 iterations (switch at 281); switching at a fixed 150, 250, 300 or 400 gave
#: 1,020, 610, 490, 520; the whole solve at Algorithm 2's rule stalls at a gap of 6e-3.
ACCELERATION = 0.25
ACCELERATED_BALANCE = 0.3
STALL_ITERATIONS = 50
#: Iterations between checks (energy, certificate, callback): a check costs about as much as
#: 10 of the kernel's iterations, so the kernel checks less often.
CHECK_EVERY = 10
KERNEL_CHECK_EVERY = 20


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


def _neighbourhood_minimum(x: torch.Tensor, ndim: int) -> torch.Tensor:
    """The minimum of ``x`` over each entry's 3x3 (3x3x3) neighbourhood of its last ``ndim``
    axes, one axis at a time (the entries past the border left out)."""
    for dim in range(x.dim() - ndim, x.dim()):
        n = x.shape[dim]
        if n < 2:
            continue
        out = x.clone()
        out.narrow(dim, 0, n - 1).copy_(
            torch.minimum(x.narrow(dim, 0, n - 1), x.narrow(dim, 1, n - 1))
        )
        tail = out.narrow(dim, 1, n - 1)
        tail.copy_(torch.minimum(tail, x.narrow(dim, 0, n - 1)))
        x = out
    return x


def feasible_dual(problem: Problem, q: torch.Tensor, passes: int = REPAIR_PASSES) -> torch.Tensor:
    """``q`` made closer to dual feasible, ``|div2 q| <= alpha1``, by local shrinking.

    ``q`` is first projected onto ``|q|_F <= alpha0``; then, ``passes`` times, where ``p~ =
    -div2 q`` exceeds ``alpha1`` at a pixel, the ``q`` entries of its 3x3 (3x3x3)
    neighbourhood, which hold every entry of its stencil, are scaled by ``alpha1 / |p~|``
    (the smallest such factor over the neighbourhood). Shrinking keeps ``|q|_F <= alpha0``;
    what violation is left is removed by :func:`certificate`'s global scale, which alone
    would shrink every pixel for the worst one.
    """
    ndim, spacing, color = problem.ndim, problem.spacing, problem.color
    alpha1 = problem.weight
    q = _project(q, alpha1 * problem.tgv_ratio, ndim, color, True)
    for _ in range(passes):
        p = symmetric_divergence(q, ndim, spacing)
        scale = (alpha1 / _squared_norm(p, ndim, color, False).sqrt().clamp(min=1e-300)).clamp(
            max=1.0
        )
        if bool((scale >= 1.0).all()):
            break
        q = q * _neighbourhood_minimum(scale, ndim)
    return q


def certificate(problem: Problem, q: torch.Tensor, passes: int = REPAIR_PASSES) -> torch.Tensor:
    """Per-sample lower bound on ``E*`` from the dual iterate ``q`` (module docstring), after
    :func:`feasible_dual`'s local repair."""
    ndim, spacing = problem.ndim, problem.spacing
    q = feasible_dual(problem, q, passes)
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


class _TorchIteration:
    """The iteration in PyTorch operations (module docstring)."""

    def __init__(
        self, problem: Problem, u: torch.Tensor, w: torch.Tensor, p: torch.Tensor, q: torch.Tensor
    ) -> None:
        self.problem = problem
        self.u, self.w, self.p, self.q = u, w, p, q
        self.u_bar, self.w_bar = u.clone(), w.clone()
        self.u_previous = u

    def run(self, iterations: int, step: list[float], gamma: float) -> None:
        problem = self.problem
        f, ndim, spacing, color = problem.f, problem.ndim, problem.spacing, problem.color
        alpha1 = problem.weight
        alpha0 = alpha1 * problem.tgv_ratio
        tau, sigma = step
        u, w, p, q, u_bar, w_bar = self.u, self.w, self.p, self.q, self.u_bar, self.w_bar
        for _ in range(iterations):
            p = _project(
                p.add_(gradient(u_bar, ndim, spacing) - w_bar, alpha=sigma),
                alpha1,
                ndim,
                color,
                False,
            )
            q = _project(
                q.add_(symmetric_gradient(w_bar, ndim, spacing), alpha=sigma),
                alpha0,
                ndim,
                color,
                True,
            )
            u_previous, w_previous = u, w
            u = problem.fidelity.prox(u + tau * divergence(p, ndim, spacing), f, tau)
            w = w + tau * field_mask(p + symmetric_divergence(q, ndim, spacing), ndim)
            theta = 1.0 / math.sqrt(1.0 + 2.0 * gamma * tau) if gamma > 0 else 1.0
            tau, sigma = tau * theta, sigma / theta
            u_bar = u + theta * (u - u_previous)
            w_bar = w + theta * (w - w_previous)
            self.u_previous = u_previous
        self.u, self.w, self.p, self.q, self.u_bar, self.w_bar = u, w, p, q, u_bar, w_bar
        step[0], step[1] = tau, sigma

    def measure(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample ``E(u, w)`` and :func:`certificate` of ``q``."""
        return tgv_energy(self.problem, self.u, self.w), certificate(self.problem, self.q)

    def change(self, tau: float, gamma: float) -> float:
        return relative_change(self.u, self.u_previous)


class _NativeIteration(_TorchIteration):
    """The same iteration through the fused kernel, in place on contiguous buffers."""

    def __init__(
        self,
        problem: Problem,
        u: torch.Tensor,
        w: torch.Tensor,
        p: torch.Tensor,
        q: torch.Tensor,
        kernel: native.TgvKernel,
    ) -> None:
        super().__init__(problem, u.contiguous(), w.contiguous(), p.contiguous(), q.contiguous())
        self.f = problem.f.contiguous()
        self.iterate = kernel.function("tgv_cp_iterations", problem.f.dtype == torch.float64)
        self.measure_kernel = kernel.library.tgv_measure_f64
        # Below about 64k values a second thread costs more in synchronisation than it saves.
        self.threads = torch.get_num_threads() if self.f.numel() >= 1 << 16 else 1

    def run(self, iterations: int, step: list[float], gamma: float) -> None:
        problem = self.problem
        n, c, h, w = self.f.shape
        steps = (ctypes.c_double * 2)(*step)
        self.iterate(
            *(
                t.data_ptr()
                for t in (self.u, self.u_bar, self.w, self.w_bar, self.p, self.q, self.f)
            ),
            n,
            c,
            h,
            w,
            int(problem.color == "channelwise"),
            problem.weight,
            problem.weight * problem.tgv_ratio,
            ctypes.addressof(steps),
            gamma,
            iterations,
            self.threads,
        )
        step[0], step[1] = steps[0], steps[1]

    def measure(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample ``E(u, w)`` and :func:`certificate` of ``q`` in one kernel call (in
        double precision, on double copies)."""
        problem = self.problem
        n, c, h, w = self.f.shape
        groups = c if problem.color == "channelwise" else 1
        arrays = (
            self.u.double().contiguous(),
            self.w.double().contiguous(),
            self.q.double().contiguous().clone(),
            self.f.double().contiguous(),
            torch.empty((n, groups, h, w), dtype=torch.float64),
            torch.empty((n, groups, h, w), dtype=torch.float64),
            torch.empty((n, c, 2, h, w), dtype=torch.float64),
        )
        out = torch.empty((n, 2), dtype=torch.float64)
        self.measure_kernel(
            *(array.data_ptr() for array in arrays),
            n,
            c,
            h,
            w,
            int(problem.color == "channelwise"),
            problem.weight,
            problem.weight * problem.tgv_ratio,
            REPAIR_PASSES,
            out.data_ptr(),
        )
        return out[:, 0].clone(), out[:, 1].clone()

    def change(self, tau: float, gamma: float) -> float:
        # u_bar - u = theta (u - u_previous), theta of the last iteration
        theta = _last_theta(tau, gamma) if gamma > 0 else 1.0
        difference = float(torch.linalg.vector_norm(self.u_bar - self.u, dtype=torch.float64))
        norm = float(torch.linalg.vector_norm(self.u, dtype=torch.float64))
        change = difference / theta
        return change / norm if norm > 0 else change


def native_kernel(problem: Problem, backend: str = "auto") -> native.TgvKernel | None:
    """The fused kernel for ``problem`` (CPU, float32/float64, L2 fidelity, 2-D images without
    grid steps), or None where the PyTorch operations run; ``backend="native"`` raises
    instead of returning None."""
    if backend == "torch":
        return None
    f = problem.f
    usable = (
        f.device.type == "cpu"
        and f.dtype in (torch.float32, torch.float64)
        and problem.fidelity.name == "l2"
        and problem.ndim == 2
        and problem.spacing is None
    )
    kernel = native.load_tgv() if usable else None
    if backend == "native" and kernel is None:
        raise InvalidParameterError(
            "backend native needs a CPU float32/float64 2-D problem with the l2 fidelity, no "
            "spacing and a working C compiler (or a cached kernel); use backend auto"
        )
    return kernel


def solve_tgv(
    problem: Problem,
    *,
    max_iter: int,
    tol: float,
    callback: Callback | None = None,
    check_every: int | None = None,
    time_limit: float | None = None,
    init: torch.Tensor | None = None,
    dual: torch.Tensor | None = None,
    tau: float | None = None,
    distance: float | None = None,
    pooled: bool = False,
    backend: str = "auto",
) -> tuple[torch.Tensor, SolveRecord]:
    """Minimise the TGV energy exactly; stop when the certified relative gap <= tol.

    ``dual`` (N, C, :func:`tgv_dual_components`, *spatial) holds ``(p, q, w)`` to start from
    (``p`` and ``q`` need not be feasible: the first step projects them); on return it holds
    the final state, so a solve at a nearby weight can start from it. Without it, ``w``
    starts at ``D u``. The record's energy is ``E(u, w)`` at the returned ``u`` and its ``w``.

    ``tau`` fixes the primal step of the plain iteration throughout (no accelerated phase).

    ``distance`` (strongly convex fidelities: L2): stop also when the certified RMS distance
    to the minimiser, ``sqrt(2 gap / n)``, is at most this. ``E(u, w) - E* >= F(u) - F* >=
    ||u - u*||^2 / 2`` for ``F(u) = min_w E(u, w)``, the 1-strongly convex energy in ``u``,
    so the gap bounds the distance as for the ROF solvers.

    ``pooled``: stop on the batch's total gap over its total energy (see
    :func:`tvdenoise.solvers.solve`).

    ``backend``: ``"native"`` the fused C kernel (CPU, L2, 2-D images), ``"torch"`` PyTorch
    operations, ``"auto"`` the kernel where it is available.
    """
    backend = _validate.choice("backend", backend, BACKENDS)
    f, ndim, spacing = problem.f, problem.ndim, problem.spacing
    fidelity = problem.fidelity
    norm_squared = operator_norm_squared(ndim, spacing)
    norm = math.sqrt(norm_squared)
    # Accelerated first phase where the fidelity is strongly convex (module docstring).
    gamma = ACCELERATION * fidelity.strong_convexity if tau is None else 0.0
    plain_tau = STEP_BALANCE / norm if tau is None else tau
    first_tau = ACCELERATED_BALANCE / norm if gamma > 0 else plain_tau
    step = [first_tau, 1.0 / (first_tau * norm_squared)]
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
    kernel = native_kernel(problem, backend)
    runner = (
        _TorchIteration(problem, u, w, p, q)
        if kernel is None
        else _NativeIteration(problem, u, w, p, q, kernel)
    )
    if check_every is None:
        check_every = CHECK_EVERY if kernel is None else KERNEL_CHECK_EVERY
    monitor = Monitor("tgv", max_iter, tol, callback, check_every, time_limit)
    values = f[0].numel()
    best_gap, best_iteration = math.inf, 0
    iteration = 0
    while iteration < max_iter:
        count = min(check_every - iteration % check_every, max_iter - iteration)
        runner.run(count, step, gamma)
        iteration += count
        energy, lower = runner.measure()
        gap = relative_gap(energy, lower, pooled)
        precise = distance is not None and (
            certified_distance(energy, lower, values, fidelity.strong_convexity) <= distance
        )
        precision = precision_gap(energy, values, fidelity.strong_convexity, distance)
        change = runner.change(step[0], gamma)
        if monitor.report(iteration, energy, gap, change, gap, precise, precision):
            break
        if gamma > 0:
            if gap < best_gap:
                best_gap, best_iteration = gap, iteration
            elif iteration - best_iteration >= STALL_ITERATIONS:
                gamma = 0.0
                step = [plain_tau, 1.0 / (plain_tau * norm_squared)]
    if dual is not None:
        dual.copy_(torch.cat([runner.p, runner.q, runner.w], dim=2))
    return runner.u, monitor.record(iteration, eps=0.0)
