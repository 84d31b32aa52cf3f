"""The exact L2 ROF solver on volumes (N, C, D, H, W) through a fused C kernel.

The same accelerated Chambolle-Pock iteration as :mod:`tvdenoise.solvers.rof` (and as the
generic :func:`tvdenoise.solvers.primal_dual.solve_primal_dual`), for isotropic,
anisotropic and symmetric TV with any grid ``spacing``, vectorial or channelwise colour, on
contiguous float32/float64 CPU tensors: each iteration is two sweeps of
``_rof_volume_kernel.c`` (dual, then primal) over the volume's rows, where the generic solver
makes some twenty PyTorch passes and holds about 176 bytes per value (36 here: u, its
extrapolation, f and the dual). The gap is measured by the kernel too, in double
precision, every ``check_every`` iterations.

Where the kernel cannot be compiled, or with ``TVDENOISE_NO_NATIVE=1``, :func:`available`
is False and ``solver="auto"`` keeps the generic solver.
"""

from __future__ import annotations

import ctypes
import functools
import math
from pathlib import Path
from typing import Any

import torch

from .. import native as _native
from ..ops import difference_norm_squared
from .base import (
    Callback,
    Monitor,
    Problem,
    SolveRecord,
    certified_distance,
    precision_gap,
    relative_gap,
)
from .primal_dual import dual_radius, start_dual
from .rof import DEFAULT_GAMMA, DEFAULT_TAU, WARM_FIRST_CHECK, _last_theta, _next_check

__all__ = ["applies", "available", "load", "solve_rof_volume"]

SOURCE = Path(__file__).with_name("_rof_volume_kernel.c")
KINDS = ("isotropic", "anisotropic", "symmetric")


class VolumeKernel:
    """The loaded volume kernel: its ctypes functions for float32 and float64."""

    def __init__(self, library: ctypes.CDLL, path: Path, compile_seconds: float) -> None:
        self.library, self.path, self.compile_seconds = library, path, compile_seconds
        pointer, size = ctypes.c_void_p, ctypes.c_long
        for suffix in ("f32", "f64"):
            iterations = getattr(library, f"rof_volume_iterations_{suffix}")
            iterations.restype = None
            iterations.argtypes = [
                *(pointer,) * 4,
                *(size,) * 5,
                ctypes.c_int,
                ctypes.c_double,
                pointer,
                pointer,
                ctypes.c_double,
                size,
                ctypes.c_int,
            ]

            measure = getattr(library, f"rof_volume_measure_{suffix}")
            measure.restype = None
            measure.argtypes = [
                *(pointer,) * 4,
                *(size,) * 5,
                ctypes.c_int,
                ctypes.c_double,
                pointer,
                pointer,
                ctypes.c_int,
            ]

    def function(self, name: str, double: bool) -> Any:
        """The ctypes function ``name`` for float64 (``double``) or float32 tensors."""
        return getattr(self.library, f"{name}_{'f64' if double else 'f32'}")


@functools.cache
def load() -> VolumeKernel | None:
    """The compiled volume kernel, compiling it on first use; None where it cannot be had."""
    built = _native.build(SOURCE, "rof_volume_kernel", ("-fno-trapping-math",), isa=True)
    if built is None:
        return None
    return VolumeKernel(built.library, built.path, built.compile_seconds)


def applies(problem: Problem) -> bool:
    """Whether the problem is one the volume kernel solves: L2, beta = 1, eps = 0, a volume
    batch (N, C, D, H, W) of float32/float64 on the CPU, isotropic, anisotropic or
    symmetric TV."""
    f = problem.f
    return (
        problem.fidelity.name == "l2"
        and problem.beta == 1.0
        and problem.eps == 0.0
        and problem.tv in KINDS
        and f.dim() == 5
        and f.device.type == "cpu"
        and f.dtype in (torch.float32, torch.float64)
    )


def available(problem: Problem) -> bool:
    """Whether :func:`solve_rof_volume` runs on ``problem`` (it applies and the kernel
    compiled)."""
    return applies(problem) and load() is not None


def solve_rof_volume(
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
    """Solve the L2, beta = 1 problem on volumes exactly; stop when the relative gap <= tol
    (or, with ``distance``, when the certified RMS distance to the minimiser is at most it).

    Arguments as for :func:`tvdenoise.solvers.rof.solve_rof`; the record is named ``"rof"``.
    """
    kernel = load()
    if kernel is None or not applies(problem):
        raise ValueError("solve_rof_volume needs a CPU float volume problem and its kernel")
    f = problem.f.contiguous()
    problem = Problem(
        f, problem.weight, 1.0, problem.tv, problem.color, problem.fidelity, 0.0, problem.spacing
    )
    n, c, d, h, w = f.shape
    spacing = problem.spacing or (1.0, 1.0, 1.0)
    symmetric = problem.symmetric
    u = (f if init is None else init.to(f)).clone(memory_format=torch.contiguous_format)
    ubar = u.clone()
    if dual is None:
        p = f.new_zeros((n, c, problem.dual_components, d, h, w))
    else:
        # The entries no difference reaches must hold 0: the kernel's divergence reads them.
        p = start_dual(dual, problem)
        p[:, :, 0, -1], p[:, :, 1, :, -1], p[:, :, 2, :, :, -1] = 0, 0, 0
        if symmetric:
            p[:, :, 3, 0], p[:, :, 4, :, 0], p[:, :, 5, :, :, 0] = 0, 0, 0
    images, channels = (n, c) if problem.color == "vectorial" else (n * c, 1)
    threads = torch.get_num_threads() if u.numel() >= 1 << 16 else 1
    double = u.dtype == torch.float64
    iterate = kernel.function("rof_volume_iterations", double)
    measure = kernel.function("rof_volume_measure", double)
    sums = torch.empty((images, 4), dtype=torch.float64)
    grid = (ctypes.c_double * 3)(*spacing)
    norm_squared = difference_norm_squared(3, problem.spacing, symmetric)
    tau = DEFAULT_TAU if tau is None else tau
    gamma = DEFAULT_GAMMA if gamma is None else gamma
    steps = (ctypes.c_double * 2)(tau, 1.0 / (norm_squared * tau))
    kind = KINDS.index(problem.tv)
    radius = dual_radius(problem)
    monitor = Monitor("rof", max_iter, tol, callback, check_every, time_limit)
    values = c * d * h * w
    pointers = (u.data_ptr(), ubar.data_ptr(), p.data_ptr(), f.data_ptr())
    count = (
        min(check_every, WARM_FIRST_CHECK)
        if distance is not None and init is not None
        else check_every
    )
    iteration, last = 0, None
    while iteration < max_iter:
        count = min(count, max_iter - iteration)
        iterate(
            *pointers,
            images,
            channels,
            d,
            h,
            w,
            kind,
            radius,
            ctypes.addressof(grid),
            ctypes.addressof(steps),
            gamma,
            count,
            threads,
        )
        iteration += count
        measure(
            *pointers,
            images,
            channels,
            d,
            h,
            w,
            kind,
            problem.weight,
            ctypes.addressof(grid),
            sums.data_ptr(),
            threads,
        )
        # Channelwise colour ran as N * C one-channel images: add the channels back per sample.
        per_sample = sums.view(n, -1, 4).sum(1)
        primal, dual_value = per_sample[:, 0], per_sample[:, 1]
        # ubar = u + theta (u - u_previous) after an iteration.
        change = math.sqrt(float(sums[:, 2].sum())) / _last_theta(steps[0], gamma)
        norm = math.sqrt(float(sums[:, 3].sum()))
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
        relative = change / norm if norm > 0 else change
        if monitor.report(iteration, primal, gap, relative, gap, precise, precision):
            break
    if dual is not None and p is not dual:
        dual.copy_(p)
    return u, monitor.record(iteration, eps=0.0)
