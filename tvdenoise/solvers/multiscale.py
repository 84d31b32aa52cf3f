"""Coarse-to-fine starting points for the exact solvers of the L2, beta = 1 problem.

A photo's flat regions are large, and a first-order method moves information about one pixel
per iteration, so a cold solve of a large image needs more iterations than a small one of the
same content. Solving a coarser copy first and starting the fine solve from its solution,
primal and dual, moves the long-range part of the work to levels that cost a quarter, a
sixteenth, ... of a fine iteration.

The coarse problem halves each side: ``f_c`` is the mean of each 2x2 block (the last row or
column repeated where a side is odd), and the weight is halved. A piecewise-constant ``u``
made of 2x2 blocks of ``u_c`` has ``1/2 ||u - f||^2 + weight TV(u) = 4 (1/2 ||u_c - f_c||^2 +
weight / 2 TV_c(u_c))`` up to a constant and the stencil's error at block edges, so the
coarse minimiser, repeated over each block, is close to the fine one; the dual (bounded by
the weight) is repeated and doubled. The fine solve then certifies its own result: its gap
is measured on the fine problem, so a poor coarse start costs iterations, never accuracy.

Measured on 4 and 12 MP colour photos (sigma 15, weight 0.07, symmetric TV, 8-bit precision
stop): the fine level needs 23-24 iterations instead of 32-34 cold, but the coarse levels add
3.5-8.4 fine-level equivalents and one more gap check, so the wall time is the same, and the
PSNR of the early-stopped result was 0.01-0.06 dB lower than the cold one's. Hence it is an
option (``multiscale=True``), off by default.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import torch
import torch.nn.functional as F

from .base import Problem, SolveRecord

__all__ = ["MIN_PIXELS", "applies", "coarse_start", "coarsen", "levels_for", "refine"]

#: Images with fewer pixels are solved cold: on 512x512 the coarse levels save less than
#: they cost (benchmarks/bench_photo.py).
MIN_PIXELS = 1 << 19
#: The coarsest level keeps at least this many pixels on its shorter side.
COARSEST_SIDE = 96
#: At most this many coarse levels.
MAX_LEVELS = 3
#: Coarse levels stop at this relative gap (or the caller's, if looser): they only start the
#: next level (1e-2 gave less work than 1e-3 and 3e-3 on 4 and 12 MP photos, same fine count).
COARSE_TOL = 1e-2
#: Coarse levels check their gap this often (their iterations are cheap).
COARSE_CHECK_EVERY = 5
SOLVERS = ("auto", "rof", "chambolle_pock")


def applies(problem: Problem, solver: str) -> bool:
    """Whether a coarse-to-fine start is defined: L2, beta = 1, eps = 0, 2-D images on a unit
    grid, a primal-dual solver."""
    return (
        solver in SOLVERS
        and problem.fidelity.name == "l2"
        and problem.beta == 1.0
        and problem.eps == 0.0
        and problem.f.dim() == 4
        and problem.spacing is None
    )


def levels_for(height: int, width: int) -> int:
    """How many coarse levels an image of ``height x width`` gets (0: solve it cold)."""
    if height * width < MIN_PIXELS:
        return 0
    levels, side = 0, min(height, width)
    while levels < MAX_LEVELS and (side + 1) // 2 >= COARSEST_SIDE:
        side = (side + 1) // 2
        levels += 1
    return levels


def coarsen(values: torch.Tensor) -> torch.Tensor:
    """Mean of each 2x2 block of the last two axes, an odd side's last row or column repeated:
    ``(..., H, W)`` to ``(..., ceil(H / 2), ceil(W / 2))``."""
    *lead, h, w = values.shape
    flat = values.reshape(-1, 1, h, w)
    if h % 2 or w % 2:
        flat = F.pad(flat, (0, w % 2, 0, h % 2), mode="replicate")
    return F.avg_pool2d(flat, 2).reshape(*lead, (h + 1) // 2, (w + 1) // 2)


def refine(values: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Repeat each value of the last two axes over a 2x2 block, cropped to ``height x width``
    (the inverse of :func:`coarsen` on block-constant values); contiguous."""
    *lead, h, w = values.shape
    doubled = F.interpolate(values.reshape(1, -1, h, w), scale_factor=2.0, mode="nearest")
    return doubled[..., :height, :width].reshape(*lead, height, width).contiguous()


def coarse_start(
    problem: Problem,
    levels: int,
    solve_level: Callable[..., tuple[torch.Tensor, SolveRecord]],
    *,
    tol: float,
    max_iter: int,
    time_limit: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Primal and dual starting points for ``problem`` from ``levels`` coarser solves.

    ``solve_level(problem, init=, dual=, tol=, max_iter=, check_every=, time_limit=)`` solves
    one level. Returns ``(init, dual, work)``: the refined coarse solution, its dual shaped
    like the fine problem's, and the coarse iterations in fine-level equivalents (each level's
    iterations times its share of the fine pixels).
    """
    started = time.perf_counter()
    pyramid = [problem.f]
    for _ in range(levels):
        pyramid.append(coarsen(pyramid[-1]))
    u = p = None
    work = 0.0
    fine_pixels = problem.f.shape[-2] * problem.f.shape[-1]
    for level in range(levels, 0, -1):
        f = pyramid[level]
        h, w = f.shape[-2:]
        coarse = replace(problem, f=f, weight=problem.weight / 2**level)
        if p is None:
            n, c = f.shape[:2]
            p = f.new_zeros((n, c, coarse.dual_components, h, w))
        else:
            assert u is not None  # set with p on the coarser level
            u, p = refine(u, h, w), 2.0 * refine(p, h, w)
        remaining = None if time_limit is None else time_limit - (time.perf_counter() - started)
        u, record = solve_level(
            coarse,
            init=u,
            dual=p,
            tol=max(tol, COARSE_TOL),
            max_iter=max_iter,
            check_every=COARSE_CHECK_EVERY,
            time_limit=None if remaining is None else max(remaining, 1e-9),
        )
        work += record.iterations * h * w / fine_pixels
        pyramid.pop()
    assert u is not None and p is not None
    h, w = problem.f.shape[-2:]
    return refine(u, h, w), 2.0 * refine(p, h, w), work
