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

On CPU with the L2 fidelity a fused C kernel (``_nonlocal_kernel.c``, loaded by
:func:`tvdenoise.solvers.native.load_nonlocal`) runs the iterations between two checks: the
dual step (gather the neighbours of ``ubar``, add, project per pixel) and the primal step
(the divergence, its incoming part gathered through the graph's reverse adjacency
:attr:`NonlocalGraph.reverse`, the prox and the extrapolation) as two sweeps over the pixels.
Elsewhere (CUDA, other fidelities, no C compiler, ``TVDENOISE_NO_NATIVE=1``) the same
iteration runs as PyTorch operations.
"""

from __future__ import annotations

import ctypes
import math

import torch

from .. import _validate
from ..errors import InvalidParameterError
from ..nonlocal_graph import NonlocalGraph
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
from .primal_dual import unaccelerated_tau
from .rof import _last_theta

__all__ = ["kernel_divergence", "native_kernel", "solve_nonlocal"]

BACKENDS = ("auto", "native", "torch")
#: Channels the kernel projects channelwise (its per-pixel norms live on the stack).
KERNEL_MAX_CHANNELS = 8
#: On one thread, run each iteration as one sweep over the rows (``nl_cp_sweep``: the
#: divergence scattered, the primal step a few rows behind the dual one) rather than two
#: sweeps with the divergence gathered through the reverse adjacency; measured in
#: benchmarks/RESULTS.md ("Nonlocal TV and TGV: speed on one thread").
ONE_SWEEP = True


def _project(p: torch.Tensor, radius: float, color: str) -> torch.Tensor:
    dims: tuple[int, ...] = (2,) if color == "channelwise" else (1, 2)
    magnitude = p.square().sum(dim=dims, keepdim=True).sqrt_().div_(radius).clamp_(min=1.0)
    return p / magnitude


def native_kernel(problem: Problem, backend: str = "auto") -> native.NonlocalKernel | None:
    """The fused kernel for ``problem`` (CPU, float32/float64, L2 fidelity), or None where
    the PyTorch operations run; ``backend="native"`` raises instead of returning None."""
    if backend == "torch":
        return None
    f, graph = problem.f, problem.nonlocal_graph
    usable = (
        f.device.type == "cpu"
        and graph.index.device.type == "cpu"
        and f.dtype in (torch.float32, torch.float64)
        and problem.fidelity.name == "l2"
        and graph.index.shape[1] * graph.index.shape[2] < 2**31
        and (problem.color == "vectorial" or f.shape[1] <= KERNEL_MAX_CHANNELS)
    )
    kernel = native.load_nonlocal() if usable else None
    if backend == "native" and kernel is None:
        raise InvalidParameterError(
            "backend native needs a CPU float32/float64 problem with the l2 fidelity and a "
            "working C compiler (or a cached kernel); use backend auto"
        )
    return kernel


def kernel_divergence(
    kernel: native.NonlocalKernel, graph: NonlocalGraph, p: torch.Tensor
) -> torch.Tensor:
    """:meth:`NonlocalGraph.divergence` of ``p`` (N, C, K, H, W) on CPU through the kernel:
    the outgoing sum per pixel and the incoming one gathered by the reverse adjacency."""
    p = p.contiguous()
    n, c, k, h, w = p.shape
    out = p.new_empty((n, c, h, w))
    start, edge, weight = graph.reverse
    # Held in names: a temporary's memory would be freed before the call reads it.
    arrays = (
        p,
        out,
        graph.root_weight.to(p.dtype).contiguous(),
        start.contiguous(),
        edge.to(torch.int32).contiguous(),
        weight.to(p.dtype).contiguous(),
    )
    kernel.function("nl_divergence", p.dtype == torch.float64)(
        *(array.data_ptr() for array in arrays),
        n,
        c,
        k,
        h * w,
        1,
    )
    return out


class _NativeIteration:
    """The iterations through the fused kernel, in place on contiguous buffers."""

    def __init__(
        self,
        kernel: native.NonlocalKernel,
        graph: NonlocalGraph,
        f: torch.Tensor,
        u: torch.Tensor,
        p: torch.Tensor,
        color: str,
    ) -> None:
        double = f.dtype == torch.float64
        self.iterate = kernel.function("nl_cp_iterations", double)
        self.sweep = kernel.function("nl_cp_sweep", double)
        self.measure_kernel = kernel.function("nl_measure", double)
        self.f = f.contiguous()
        self.u = u.contiguous()
        self.ubar = self.u.clone()
        self.p = p.contiguous()
        self.div = torch.zeros_like(self.f)
        self.index = graph.index.to(torch.int32).contiguous()
        self.root_weight = graph.root_weight.to(f.dtype).contiguous()
        self.graph = graph
        # The reverse adjacency, built on the first two-sweep run (one sweep needs none).
        self.reverse: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        n, c, h, w = f.shape
        self.shape = (n, c, graph.neighbours, h * w)
        self.channelwise = int(color == "channelwise")
        # Below about 64k values a second thread costs more in synchronisation than it saves.
        self.threads = torch.get_num_threads() if f.numel() >= 1 << 16 else 1
        self.rows = (h, w)
        # The largest row offset of an edge: how far the one-sweep primal step trails.
        pixel = torch.arange(h * w, device=graph.index.device)
        self.reach = int((graph.index // w - pixel // w).abs().max()) if h * w > 0 else 0

    def run(self, iterations: int, step: list[float], radius: float, gamma: float) -> None:
        steps = (ctypes.c_double * 2)(*step)
        if ONE_SWEEP and self.threads == 1:
            self.sweep(
                *(
                    t.data_ptr()
                    for t in (
                        self.u,
                        self.ubar,
                        self.p,
                        self.f,
                        self.div,
                        self.index,
                        self.root_weight,
                    )
                ),
                *self.shape[:3],
                *self.rows,
                self.reach,
                self.channelwise,
                radius,
                ctypes.addressof(steps),
                gamma,
                iterations,
            )
            step[0], step[1] = steps[0], steps[1]
            return
        if self.reverse is None:
            start, edge, weight = self.graph.reverse
            self.reverse = (
                start.contiguous(),
                edge.to(torch.int32).contiguous(),
                weight.to(self.f.dtype).contiguous(),
            )
        self.iterate(
            *(
                t.data_ptr()
                for t in (
                    self.u,
                    self.ubar,
                    self.p,
                    self.f,
                    self.div,
                    self.index,
                    self.root_weight,
                    *self.reverse,
                )
            ),
            *self.shape,
            self.channelwise,
            radius,
            ctypes.addressof(steps),
            gamma,
            iterations,
            self.threads,
        )
        step[0], step[1] = steps[0], steps[1]

    def measure(self, theta: float) -> tuple[torch.Tensor, float]:
        """Per-sample NLTV of ``u`` (float64) and ``||u - u_previous|| / ||u||``."""
        out = torch.empty((self.shape[0], 2), dtype=torch.float64)
        self.measure_kernel(
            self.u.data_ptr(),
            self.ubar.data_ptr(),
            self.index.data_ptr(),
            self.root_weight.data_ptr(),
            *self.shape,
            self.channelwise,
            out.data_ptr(),
            self.threads,
        )
        change = math.sqrt(float(out[:, 1].sum())) / theta
        norm = float(torch.linalg.vector_norm(self.u, dtype=torch.float64))
        return out[:, 0], change / norm if norm > 0 else change


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
    backend: str = "auto",
) -> tuple[torch.Tensor, SolveRecord]:
    """Solve nonlocal TV exactly; stop when the relative primal-dual gap <= tol.

    ``dual`` (N, C, K, H, W) is a starting dual variable; on return it holds the final one.
    ``distance``: stop also when the certified RMS distance to the minimiser is at most this.

    ``pooled``: stop on the batch's total gap over its total energy (see
    :func:`tvdenoise.solvers.solve`).

    ``backend``: ``"native"`` the fused C kernel (CPU, L2), ``"torch"`` PyTorch operations,
    ``"auto"`` the kernel where it is available (the record's solver is ``"nonlocal"``
    either way).
    """
    backend = _validate.choice("backend", backend, BACKENDS)
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
    values = f[0].numel()

    def check(iteration: int, energy: torch.Tensor, div_p: torch.Tensor, change: float) -> bool:
        dual_value = fidelity.dual(f, div_p)
        gap = relative_gap(energy, dual_value, pooled)
        precise = distance is not None and (
            certified_distance(energy, dual_value, values, fidelity.strong_convexity) <= distance
        )
        precision = precision_gap(energy, values, fidelity.strong_convexity, distance)
        return monitor.report(iteration, energy, gap, change, gap, precise, precision)

    iteration = 0
    kernel = native_kernel(problem, backend)
    if kernel is not None:
        runner = _NativeIteration(kernel, graph, f, u, p, color)
        step = [tau, sigma]
        while iteration < max_iter:
            count = min(check_every - iteration % check_every, max_iter - iteration)
            runner.run(count, step, weight, gamma)
            iteration += count
            tv, change = runner.measure(_last_theta(step[0], gamma))
            energy = fidelity.value(runner.u, runner.f) + weight * tv
            if check(iteration, energy, runner.div, change):
                break
        u, p = runner.u, runner.p
    else:
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
                if check(iteration, energy, div_p, relative_change(u, u_previous)):
                    break
    if dual is not None:
        dual.copy_(p)
    return u, monitor.record(iteration, eps=0.0)
