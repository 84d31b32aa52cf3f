"""Fast exact solver for the ROF problem: L2 fidelity, beta = 1, eps = 0, images (N, C, H, W).

Minimises ``E(u) = 1/2 ||u - f||^2 + weight * TV(u)`` (isotropic, anisotropic or symmetric,
vectorial or channelwise colour) with the accelerated Chambolle-Pock iteration (Algorithm 2 of
Chambolle & Pock 2011, see :mod:`tvdenoise.solvers.primal_dual` for the general method),
specialised so that one iteration makes as few passes over memory as it can:

- on CPU, a fused C kernel (:mod:`tvdenoise.solvers.native`) runs ``check_every`` iterations
  per call, several per sweep over the rows (a wavefront: iteration k's dual and primal steps
  run two rows behind iteration k - 1's, so the rows in flight stay in cache and a sweep of
  :func:`wavefront_depth` iterations reads and writes the image once; each value gets the
  operations of the plain two-sweep iteration), and computes energy and dual value in one
  more sweep, in double precision;
- elsewhere (CUDA, or no C compiler) the same iteration runs as in-place PyTorch operations
  on preallocated buffers, with the channel coupling in one ``vector_norm``.

Steps: ``tau = 0.25``, ``sigma = 1 / (8 tau)``, ``gamma = 0.25`` (a quarter of the strong
convexity of the L2 term); the figures behind this are in benchmarks/RESULTS.md. The dual
variable starts at 0 and the primal at ``f`` (or ``init``); the relative gap
``(E(u) - D(p)) / E(u)`` is checked every ``check_every`` iterations, as in every exact solver.

References
----------
A. Chambolle, T. Pock, "A first-order primal-dual algorithm for convex problems with
applications to imaging", J. Math. Imaging Vis. 40 (2011).
"""

from __future__ import annotations

import ctypes
import math
import os

import torch

from .. import _validate
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
    relative_gap,
)
from .primal_dual import dual_radius, project_dual, start_dual

__all__ = ["applies", "fused_available", "solve_rof"]

BACKENDS = ("auto", "native", "torch")


def applies(problem: Problem) -> bool:
    """Whether :func:`solve_rof` can solve ``problem`` (L2, beta = 1, eps = 0, 2-D images)."""
    return (
        problem.fidelity.name == "l2"
        and problem.beta == 1.0
        and problem.eps == 0.0
        and problem.f.dim() == 4
        and problem.spacing is None
    )


# Primal step and acceleration: on camera 512^2 (sigma 25) tau = 0.25, gamma = 0.25 needs 45,
# 140 and 485 iterations to a gap of 1e-4 at weights 0.05, 0.1 and 0.3; gamma = 0.5 needs 45,
# 125 and 525, and larger tau slightly more (benchmarks/RESULTS.md).
DEFAULT_TAU = 0.25
DEFAULT_GAMMA = 0.25


class _TorchIteration:
    """The iteration in PyTorch operations, in place on preallocated buffers."""

    def __init__(self, problem: Problem, u: torch.Tensor, p: torch.Tensor) -> None:
        self.f = problem.f
        self.weight = problem.weight
        self.radius = dual_radius(problem)
        self.tv, self.color = problem.tv, problem.color
        self.symmetric = problem.symmetric
        self.u, self.p = u, p
        self.ubar = u.clone()

    def run(self, iterations: int, step: list[float], gamma: float) -> None:
        if self.symmetric:
            self._run_symmetric(iterations, step, gamma)
            return
        u, ubar, p, f, weight = self.u, self.ubar, self.p, self.f, self.weight
        p_y, p_x = p[:, :, 0], p[:, :, 1]
        for _ in range(iterations):
            tau, sigma = step
            theta = 1.0 / math.sqrt(1.0 + 2.0 * gamma * tau)
            # Dual: p <- project(p + sigma D ubar).
            p_y[..., :-1, :].add_(ubar[..., 1:, :], alpha=sigma).sub_(
                ubar[..., :-1, :], alpha=sigma
            )
            p_x[..., :, :-1].add_(ubar[..., :, 1:], alpha=sigma).sub_(
                ubar[..., :, :-1], alpha=sigma
            )
            if self.tv == "anisotropic" and self.color == "channelwise":
                p.clamp_(-weight, weight)
            else:
                dims = (2,) if self.tv == "isotropic" else ()
                dims = (1, *dims) if self.color == "vectorial" else dims
                magnitude = torch.linalg.vector_norm(p, dim=dims, keepdim=True)
                p.div_(magnitude.div_(weight).clamp_(min=1.0))
            # Primal: ubar <- -theta u; u <- (u + tau (div p + f)) / (1 + tau); ubar += (1+theta) u.
            torch.mul(u, -theta, out=ubar)
            u.add_(f, alpha=tau)
            u[..., :-1, :].add_(p_y[..., :-1, :], alpha=tau)
            u[..., 1:, :].sub_(p_y[..., :-1, :], alpha=tau)
            u[..., :, :-1].add_(p_x[..., :, :-1], alpha=tau)
            u[..., :, 1:].sub_(p_x[..., :, :-1], alpha=tau)
            u.mul_(1.0 / (1.0 + tau))
            ubar.add_(u, alpha=1.0 + theta)
            step[0], step[1] = tau * theta, sigma / theta

    def _run_symmetric(self, iterations: int, step: list[float], gamma: float) -> None:
        """The same iteration for symmetric TV, through the generic difference operators."""
        u, f, p = self.u, self.f, self.p
        for _ in range(iterations):
            tau, sigma = step
            theta = 1.0 / math.sqrt(1.0 + 2.0 * gamma * tau)
            p.add_(gradient(self.ubar, 2, symmetric=True), alpha=sigma)
            p.copy_(project_dual(p, self.radius, self.tv, self.color))
            previous = u.clone()
            u.add_(divergence(p, 2, symmetric=True).add_(f), alpha=tau).mul_(1.0 / (1.0 + tau))
            torch.add(u, u - previous, alpha=theta, out=self.ubar)
            step[0], step[1] = tau * theta, sigma / theta

    def measure(self, problem: Problem, theta: float) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Per-sample energy and dual value (float64), and ``||u - u_previous|| / ||u||``."""
        # ubar = u + theta (u - u_previous) after an iteration.
        change = torch.linalg.vector_norm(self.ubar - self.u, dtype=torch.float64) / theta
        norm = torch.linalg.vector_norm(self.u, dtype=torch.float64)
        relative = float(change / norm) if norm > 0 else float(change)
        div_p = divergence(self.p, symmetric=self.symmetric)
        return problem.energy(self.u), problem.fidelity.dual(self.f, div_p), relative


class _NativeIteration(_TorchIteration):
    """The same iteration through the fused C kernel (CPU, contiguous float32/float64)."""

    def __init__(
        self, problem: Problem, u: torch.Tensor, p: torch.Tensor, kernel: native.NativeKernel
    ) -> None:
        super().__init__(problem, u, p)
        n, c, h, w = u.shape
        self.images, self.channels = (n, c) if problem.color == "vectorial" else (n * c, 1)
        self.shape = (self.images, self.channels, h, w)
        self.kind = ("isotropic", "anisotropic", "symmetric").index(problem.tv)
        double = u.dtype == torch.float64
        self.iterate = kernel.function("rof_cp_iterations", double)
        self.measure_kernel = kernel.function("rof_measure", double)
        # Below about 64k values a second thread costs more in synchronisation than it saves.
        self.threads = torch.get_num_threads() if u.numel() >= 1 << 16 else 1
        self.batch = n
        self.wavefront = kernel.function("rof_cp_wavefront", double)
        # The rows in flight (about 2 depth + 3: u, ubar, f and the dual of every channel).
        pairs = 2 if self.kind == 2 else 1
        row_bytes = self.channels * (2 * pairs + 3) * w * u.element_size()
        wide = self.channels * w >= WAVEFRONT_MIN_ROW
        self.depth = wavefront_depth(row_bytes) if wide else 0

    def run(self, iterations: int, step: list[float], gamma: float) -> None:
        steps = (ctypes.c_double * 2)(*step)
        extra = (self.depth,) if self.depth > 0 else ()
        (self.wavefront if extra else self.iterate)(
            self.u.data_ptr(),
            self.ubar.data_ptr(),
            self.p.data_ptr(),
            self.f.data_ptr(),
            *self.shape,
            self.kind,
            self.radius,
            ctypes.addressof(steps),
            gamma,
            iterations,
            self.threads,
            *extra,
        )
        step[0], step[1] = steps[0], steps[1]

    def measure(self, problem: Problem, theta: float) -> tuple[torch.Tensor, torch.Tensor, float]:
        out = torch.empty((self.images, 4), dtype=torch.float64)
        self.measure_kernel(
            self.u.data_ptr(),
            self.ubar.data_ptr(),
            self.p.data_ptr(),
            self.f.data_ptr(),
            *self.shape,
            self.kind,
            self.weight,
            out.data_ptr(),
            self.threads,
        )
        # Channelwise colour ran as N * C one-channel images: add the channels back per sample.
        per_sample = out.view(self.batch, -1, 4).sum(1)
        change, norm = math.sqrt(out[:, 2].sum()) / theta, math.sqrt(out[:, 3].sum())
        return per_sample[:, 0], per_sample[:, 1], change / norm if norm > 0 else change


#: Cache the wavefront's rows in flight should fit in (bytes); 0 turns the wavefront off.
WAVEFRONT_CACHE = int(os.environ.get("TVDENOISE_WAVEFRONT_CACHE", 16 << 20))
#: Values per row (channels x width) from which the wavefront is used: it costs one thread
#: barrier per row step, which only wide rows repay. Measured on 2 threads (OMP_WAIT_POLICY
#: passive, symmetric / isotropic, ms per iteration, plain two sweeps -> depth 16): 12 MP
#: colour 56 -> 48 / 29 -> 18, 4 MP colour 21 -> 17 / 10 -> 7, but a pair of 1024 x 1024
#: colour crops 10 -> 12 / 5 -> 6 and 512 x 512 grey 0.3 -> 1-2.
WAVEFRONT_MIN_ROW = 6144
#: The most iterations one wavefront sweep carries.
WAVEFRONT_MAX_DEPTH = 16


def wavefront_depth(row_bytes: int, cache: int | None = None) -> int:
    """Iterations per sweep of the fused kernel for rows of ``row_bytes``: as many as keep
    the rows in flight within ``cache`` bytes (:data:`WAVEFRONT_CACHE`), at most
    :data:`WAVEFRONT_MAX_DEPTH`; 0 (the plain two-sweep iteration) when ``cache`` is 0."""
    cache = WAVEFRONT_CACHE if cache is None else cache
    if cache <= 0:
        return 0
    return max(1, min(WAVEFRONT_MAX_DEPTH, (cache // max(row_bytes, 1) - 3) // 2))


def fused_available(problem: Problem) -> bool:
    """Whether :func:`solve_rof` would run the fused kernel on ``problem``.

    Only then is it the fastest choice: its PyTorch-operations backend takes about 10 times
    longer per iteration than the generic ``chambolle_pock`` (benchmarks/RESULTS.md).
    """
    return applies(problem) and _native_kernel(problem.f, "auto") is not None


def _native_kernel(f: torch.Tensor, backend: str) -> native.NativeKernel | None:
    if backend == "torch":
        return None
    usable = f.device.type == "cpu" and f.dtype in (torch.float32, torch.float64)
    kernel = native.load() if usable else None
    if backend == "native" and kernel is None:
        raise InvalidParameterError(
            "backend native needs a CPU float32/float64 problem and a working C compiler "
            "(or a cached kernel); use backend auto"
        )
    return kernel


def solve_rof(
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
    backend: str = "auto",
    distance: float | None = None,
    pooled: bool = False,
) -> tuple[torch.Tensor, SolveRecord]:
    """Solve the L2, beta = 1 problem exactly; stop when the relative primal-dual gap <= tol.

    Parameters
    ----------
    problem : Problem
        L2 fidelity, beta = 1, eps = 0, ``f`` of shape (N, C, H, W) on any device.
    max_iter, tol, callback, check_every, time_limit, init, dual, pooled
        As for every solver (:func:`tvdenoise.solvers.solve`).
    tau, gamma : float, optional
        Initial primal step and acceleration; by default ``DEFAULT_TAU`` and ``DEFAULT_GAMMA``.
    backend : {"auto", "native", "torch"}
        ``"native"`` the fused C kernel (CPU only), ``"torch"`` PyTorch operations, ``"auto"``
        the kernel where it is available and the problem is on the CPU.
    distance : float, optional
        Stop also when the certified root-mean-square distance to the minimiser,
        ``sqrt(2 (E(u) - D(p)) / n)`` for ``n`` values per sample, is at most this (the record
        still holds the relative gap). Then the checks are spaced by the gap's decay: the
        distance falls about as 1 / k, so the next check is where that predicts the target
        (at least 3 and at most ``check_every`` iterations later).

    Returns
    -------
    The minimiser (N, C, H, W) and a :class:`SolveRecord` named ``"rof"``.
    """
    _validate.solver_applies("rof", problem.beta, problem.eps)
    if not applies(problem):
        raise InvalidParameterError(
            f"solver rof needs the l2 fidelity and images (N, C, H, W), got fidelity "
            f"{problem.fidelity.name} and shape {tuple(problem.f.shape)}; use auto"
        )
    backend = _validate.choice("backend", backend, BACKENDS)
    tau = DEFAULT_TAU if tau is None else tau
    gamma = DEFAULT_GAMMA if gamma is None else gamma
    f = problem.f.contiguous()
    problem = Problem(f, problem.weight, 1.0, problem.tv, problem.color, problem.fidelity)
    u = (f if init is None else init.to(f)).clone(memory_format=torch.contiguous_format)
    n, c, h, w = f.shape
    symmetric = problem.symmetric
    if dual is None:
        p = f.new_zeros((n, c, problem.dual_components, h, w))
    else:
        # The entries no difference reaches must hold 0: the kernel's divergence reads them.
        p = start_dual(dual, problem)
        p[:, :, 0, -1, :] = 0
        p[:, :, 1, :, -1] = 0
        if symmetric:
            p[:, :, 2, 0, :] = 0
            p[:, :, 3, :, 0] = 0
    kernel = _native_kernel(f, backend)
    iteration_runner = (
        _NativeIteration(problem, u, p, kernel)
        if kernel is not None
        else _TorchIteration(problem, u, p)
    )
    monitor = Monitor("rof", max_iter, tol, callback, check_every, time_limit)
    step = [tau, 1.0 / (difference_norm_squared(2, symmetric=symmetric) * tau)]

    iteration, values = 0, c * h * w
    # A warm start with a precision to reach may already be close: check early, then at the
    # iteration the bound's decay predicts.
    count = (
        min(check_every, WARM_FIRST_CHECK)
        if distance is not None and init is not None
        else check_every
    )
    last: tuple[int, float] | None = None  # (iteration, distance bound) at the last check
    while iteration < max_iter:
        count = min(count, max_iter - iteration)
        iteration_runner.run(count, step, gamma)
        iteration += count
        primal, dual_value, change = iteration_runner.measure(problem, _last_theta(step[0], gamma))
        gap = relative_gap(primal, dual_value, pooled)
        count = check_every - iteration % check_every
        precise = False
        if distance is not None:
            bound = certified_distance(primal, dual_value, values, 1.0)
            precise = bound <= distance
            if math.isfinite(bound) and bound > 0:
                count = _next_check(iteration, bound, distance, last, check_every)
                last = (iteration, bound)
        precision = precision_gap(primal, values, 1.0, distance)
        if monitor.report(iteration, primal, gap, change, gap, precise, precision):
            break
    if dual is not None and p is not dual:
        dual.copy_(p)
    return u, monitor.record(iteration, eps=0.0)


#: First check of a warm-started solve with a ``distance`` to reach (the final solve after
#: the automatic weight search starts from the search's solution, often already within it).
WARM_FIRST_CHECK = 5
#: The certified distance falls about as k^-DECAY (measured on 4 MP photos, cold and warm
#: started: 1.4 to 1.6); refitted from the last two checks once there are two.
DECAY = 1.5


def _next_check(
    iteration: int,
    bound: float,
    distance: float,
    last: tuple[int, float] | None,
    check_every: int,
) -> int:
    """Iterations until the next check, where the decay of the distance bound predicts that
    it reaches ``distance`` (at least 2, at most ``check_every``)."""
    decay = DECAY
    if last is not None and last[1] > bound and last[0] < iteration:
        decay = min(max(math.log(last[1] / bound) / math.log(iteration / last[0]), 1.0), 3.0)
    target = iteration * (bound / distance) ** (1.0 / decay)
    return min(check_every, max(2, math.ceil(target - iteration)))


def _last_theta(tau: float, gamma: float) -> float:
    """The theta of the iteration that has just made the primal step ``tau``.

    That iteration started from ``t`` with ``tau = t theta``, ``theta = 1 / sqrt(1 + 2 gamma t)``,
    so ``t^2 = tau^2 (1 + 2 gamma t)``; its positive root gives ``theta = tau / t``.
    """
    previous = gamma * tau * tau + math.sqrt((gamma * tau * tau) ** 2 + tau * tau)
    return tau / previous
