"""Choose the weight without the clean image: minimise Stein's unbiased risk estimate (SURE).

For Gaussian noise of standard deviation sigma, ``f = x + sigma * z``, and a denoiser
``u = h(f)`` on ``n`` values, SURE is an unbiased estimate of the mean squared error
``||u - x||^2 / n`` that needs only ``f``:

    SURE = ||u - f||^2 / n - sigma^2 + (2 sigma^2 / n) * div h(f)

The divergence is estimated by Monte Carlo (Ramani, Blu & Unser 2008) with one seeded probe
``b`` of standard normal values and a small step ``delta``:

    div h(f) ~ <b, h(f + delta * b) - h(f)> / delta

``h(f)`` and ``h(f + delta b)`` are solved together as one batch of two, so they stop at the
same iteration and their difference is accurate even at a loose tolerance. The weight is
searched on ``log(weight)``: trials a factor 2 apart around ``0.7 sigma`` (times ``sqrt(C)``
for vectorial colour), the first guess and the weight twice as large first (the optimum is
usually above the guess), the one half as large only when needed, moving the bracket while
its lowest risk is at an end; then
one more trial at the vertex of the parabola through the bracket (the risk curve is lopsided on
smooth images, and a vertex from points a factor 2 apart missed the oracle by up to 0.9 dB);
the weight is the vertex of the parabola through the lowest measured risk and its neighbours.
Trials solve to a relative gap of ``SEARCH_TOL`` (3e-3: the risk curve is flat near its
minimum), each starting from the nearest earlier trial's primal and dual solution (the dual
scaled by the ratio of the weights), and so does the final solve. Images of more than
``TILED_FROM`` pixels are searched on ``SEARCH_TILES`` tiles of ``SEARCH_TILE`` squared
pixels spread over the image on a grid (:func:`search_windows`), solved as one batch whose
gap is pooled (the risk is their sum); sigma is then estimated on the central crop of
``SIGMA_SIDE`` on a side. Sixteen tiles of 128 x 128 cost a quarter of the central
1024 x 1024 crop searched before, and sample the whole photo rather than its centre
(benchmarks/RESULTS.md, "the weight search on tiles").

References
----------
S. Ramani, T. Blu, M. Unser, "Monte-Carlo SURE: a black-box optimization of regularization
parameters for general denoising algorithms", IEEE Trans. Image Process. 17 (2008).
C. M. Stein, "Estimation of the mean of a multivariate normal distribution", Ann. Stat. 9
(1981).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch

from . import _validate
from .errors import InvalidParameterError
from .progress import CHOOSING, ESTIMATING, Stage
from .solvers import Problem, SolveRecord, scale_dual, solve

__all__ = ["AutoWeightRecord", "WeightChoice", "search_weight", "sure"]

# The search solves at this relative tolerance (or the caller's, if looser): the risk curve is
# flat near its minimum, so a weight good to a few percent is all the search must find.
SEARCH_TOL = 3e-3
# First bracket: CENTRE * sigma * exp(+-STEP), times sqrt(C) for vectorial colour (its
# gradient norm adds C channels). Oracle weights on scikit-image's test images at sigma 10 to
# 50 are 0.35 to 1 sigma for grey images and 1 to 1.4 sigma for colour ones (vectorial).
CENTRE = 0.7
STEP = math.log(2.0)
MAX_TRIALS = 8
# After the bracket, measure the risk at the parabola's vertex too (one more trial) unless it
# lies within this distance (in log weight) of a measured point.
REFINE = True
REFINE_MIN = 0.1
# Trials check their gap this often: started from a nearby trial, they often converge in
# fewer iterations than the fused kernel's default interval.
SEARCH_CHECK_EVERY = 10
# Trial solutions kept as starting points (the lowest risks): each holds the pair's primal
# and dual variables, 6 values per pixel-channel for 2-D images (10 for symmetric TV).
KEEP = 3
SOLVERS_WITH_DUAL = ("auto", "rof", "chambolle_pock")  # TGV and nonlocal: auto, chambolle_pock
# Images of more than TILED_FROM pixels are searched on SEARCH_TILES tiles of SEARCH_TILE x
# SEARCH_TILE pixels on a grid over the image (4 x 4 on a square, 3 x 5 on a 4:3 photo), and
# their noise is estimated on the central SIGMA_SIDE x SIGMA_SIDE crop. Below, the whole image
# is searched and the final solve starts from the search's solution, which costs less than a
# cold final solve as long as the image is no more than about twice the tiles.
SEARCH_TILES = 16
SEARCH_TILE = 128
TILED_FROM = 2 * SEARCH_TILES * SEARCH_TILE**2
SIGMA_SIDE = 1024


@dataclass(frozen=True)
class WeightChoice:
    """How ``weight="auto"`` chose the weight.

    Attributes
    ----------
    weight : float
        The chosen weight.
    sigma : float
        The noise standard deviation used (on the image's [0, 1] scale).
    sigma_estimated : bool
        True when sigma was estimated from the image, False when the caller gave it.
    risk : float
        SURE's estimate of the mean squared error per value at the chosen weight
        (``10 * log10(peak^2 / risk)`` estimates the PSNR).
    trials : list of (weight, risk)
        Every weight tried by the search, in order, with its SURE value.
    iterations : int
        Solver iterations of all trials together (each trial solves a batch of two: the
        image and the probed image; for images over ``TILED_FROM`` pixels, on their tiles).
    seconds : float
        Time spent choosing (noise estimate and trials), not counting the final solve.
    sigma_seconds : float
        The part of ``seconds`` spent estimating sigma (0 when it was given).
    """

    weight: float
    sigma: float
    sigma_estimated: bool
    risk: float
    trials: list[tuple[float, float]] = field(default_factory=list)
    iterations: int = 0
    seconds: float = 0.0
    sigma_seconds: float = 0.0


@dataclass
class AutoWeightRecord(SolveRecord):
    """A :class:`SolveRecord` of the final solve, with the :class:`WeightChoice` behind it."""

    weight_choice: WeightChoice | None = None


def with_choice(record: SolveRecord, choice: WeightChoice) -> AutoWeightRecord:
    """Copy ``record`` into an :class:`AutoWeightRecord` carrying ``choice``."""
    values = {item.name: getattr(record, item.name) for item in fields(record)}
    return AutoWeightRecord(**values, weight_choice=choice)


def probe_step(sigma: float, size: int) -> float:
    """Finite-difference step for the divergence probe: ``2 sigma / size^0.3``.

    Deledalle, Vaiter, Fadili & Peyre (SUGAR, 2014) recommend this scaling: small enough to
    measure the local slope of the denoiser, large enough that solver error does not dominate.
    """
    return 2.0 * sigma / size**0.3


def make_probe(shape: torch.Size, seed: int, device: torch.device, dtype: torch.dtype) -> Any:
    """Standard normal probe, drawn on the CPU from ``seed`` so every device gets the same."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator, dtype=dtype).to(device)


def sure(
    f: torch.Tensor,
    u: torch.Tensor,
    u_probe: torch.Tensor,
    probe: torch.Tensor,
    step: float,
    sigma: float,
) -> float:
    """Monte-Carlo SURE (mean squared error per value) of the denoised ``u`` of ``f``.

    ``u_probe`` is the denoiser's output for ``f + step * probe``; all tensors share a shape.
    """
    n = f.numel()
    residual = float(torch.linalg.vector_norm(u - f, dtype=torch.float64)) ** 2 / n
    divergence = float((probe * (u_probe - u)).sum(dtype=torch.float64)) / (step * n)
    return residual - sigma**2 + 2.0 * sigma**2 * divergence


def search_weight(
    problem: Problem,
    sigma: float | None = None,
    *,
    solver: str = "auto",
    max_iter: int = _validate.DEFAULT_MAX_ITER,
    tol: float = _validate.DEFAULT_TOL,
    seed: int = 0,
    time_limit: float | None = None,
    on_stage: Callable[[Stage], object] | None = None,
) -> tuple[WeightChoice, torch.Tensor | None, torch.Tensor | None]:
    """The search behind :func:`tvdenoise.choose_weight`, on a prepared problem (its weight
    ignored). ``on_stage`` is told when the noise estimate and each trial begin
    (:class:`tvdenoise.progress.Stage`).

    Returns the choice and the search's solution nearest the chosen weight (solved to
    ``max(tol, SEARCH_TOL)``) as starting points for the final solve: its primal variable
    and, for the primal-dual solvers, its dual variable scaled to the chosen weight (else
    None); both None when the search ran on the tiles of a large image.
    ``time_limit`` is a rough budget: no new trial starts after it.
    """
    start = time.perf_counter()
    refuse_non_gaussian(problem.fidelity.name)
    tell = on_stage if on_stage is not None else _ignore
    sigma_estimated = sigma is None
    if sigma is None:
        from .noise import estimate_sigma

        tell(Stage(ESTIMATING))

        # On at most the central SIGMA_SIDE^2 pixels: enough flat patches for the estimate,
        # at a cost that does not grow with the image.
        sigma = float(estimate_sigma(central_crop(problem.f, SIGMA_SIDE)))
        sigma_seconds = time.perf_counter() - start
        if not sigma > 0:
            raise InvalidParameterError(
                "weight='auto' found no noise in the image (estimated sigma 0); "
                "pass a weight or sigma"
            )
    else:
        sigma = _validate.positive("sigma", sigma)
        sigma_seconds = 0.0
    # Large images are searched on tiles spread over them: the risk curve of a quarter of a
    # megapixel is measured well enough, at a cost that does not grow with the image.
    windows = search_windows(*problem.f.shape[-2:]) if problem.ndim == 2 else None
    if windows is not None:
        graph = problem.graph
        if graph is not None:
            if graph.pilot is None:
                raise ValueError("a nonlocal graph without its pilot cannot be rebuilt on tiles")
            graph = graph.rebuilt(take_windows(graph.pilot, windows))
        problem = replace(problem, f=take_windows(problem.f, windows), graph=graph)
    f = problem.f
    step = probe_step(sigma, f.numel())
    probe = make_probe(f.shape, seed, f.device, f.dtype)
    # The probed copy is solved on the same graph (nonlocal TV): the risk estimate then treats
    # the graph as fixed, not as a function of the noisy image.
    pair = replace(
        problem,
        f=torch.cat([f, f + step * probe]),
        graph=None if problem.graph is None else problem.graph.repeat(2),
    )
    count = f.shape[0]
    search_tol = max(tol, SEARCH_TOL)
    # The primal-dual solvers (beta = 1, eps = 0) also start from the nearest trial's dual.
    uses_dual = problem.beta == 1.0 and problem.eps == 0.0 and solver in SOLVERS_WITH_DUAL
    # Solutions (primal, dual) of the trials with the lowest risks, to start later trials from.
    solutions: dict[float, tuple[torch.Tensor, torch.Tensor | None]] = {}
    risks: dict[float, float] = {}
    trials: list[tuple[float, float]] = []
    iterations = 0

    def nearest(log_weight: float) -> float | None:
        return min(solutions, key=lambda t: abs(t - log_weight), default=None)

    def start_from(log_weight: float, size: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Primal and dual starting points for a solve at ``log_weight`` on the first
        ``size`` images of the pair: the nearest trial's, its dual scaled to the new weight
        (the dual is bounded by the weight, and its direction changes slowly with it); no
        dual where the solver has none."""
        known = nearest(log_weight)
        if known is None:
            _, c, *spatial = pair.f.shape
            shape = (size, c, pair.dual_components, *spatial)
            return None, pair.f.new_zeros(shape) if uses_dual else None
        u, p = solutions[known]
        return u[:size], None if p is None else scale_dual(
            pair, p[:size], math.exp(log_weight - known)
        )

    def risk(log_weight: float) -> float:
        nonlocal iterations
        tell(Stage(CHOOSING, f"trial {len(trials) + 1}"))
        trial = replace(pair, weight=math.exp(log_weight))
        init, dual = start_from(log_weight, 2 * count)
        u, record = solve(
            trial,
            solver,
            max_iter=max_iter,
            tol=search_tol,
            init=init,
            dual=dual,
            check_every=SEARCH_CHECK_EVERY,
            pooled=True,
        )
        iterations += record.iterations
        value = sure(f, u[:count], u[count:], probe, step, sigma)
        solutions[log_weight], risks[log_weight] = (u, dual), value
        trials.append((math.exp(log_weight), value))
        if len(solutions) > KEEP:
            del solutions[max(solutions, key=lambda t: risks[t])]
        return value

    def out_of_time() -> bool:
        return len(trials) >= MAX_TRIALS or (
            time_limit is not None and time.perf_counter() - start >= time_limit
        )

    channels = f.shape[1] if problem.color == "vectorial" else 1
    centre = math.log(CENTRE * sigma * math.sqrt(channels))
    low, high = centre - STEP, centre + STEP
    # The optimum is more often above the first guess than below it: try the larger weight
    # first, and the smaller only if the larger does not already show the way up.
    risk(centre)
    risk(high)
    if risks[high] < risks[centre]:
        low, centre, high = centre, high, high + STEP
        risk(high)
    else:
        risk(low)
    # Move the bracket while its lowest risk is at an end.
    while not out_of_time():
        if risks[low] < risks[centre] and risks[low] <= risks[high]:
            low, centre, high = low - STEP, low, centre
            risk(low)
        elif risks[high] < risks[centre]:
            low, centre, high = centre, high, high + STEP
            risk(high)
        else:
            break
    if REFINE and min(risks, key=lambda t: risks[t]) == centre and not out_of_time():
        # The risk curve is often lopsided (flatter towards larger weights on smooth
        # images), so the vertex of a parabola through points a factor 2 apart can miss
        # by half a step: measure the risk there too, then fit the three points around the
        # lowest one.
        vertex, _ = parabola_vertex((low, risks[low]), (centre, risks[centre]), (high, risks[high]))
        if min(abs(vertex - t) for t in risks) > REFINE_MIN:
            risk(vertex)
    chosen, estimate = _lowest(risks)
    choice = WeightChoice(
        weight=math.exp(chosen),
        sigma=sigma,
        sigma_estimated=sigma_estimated,
        risk=estimate,
        trials=trials,
        iterations=iterations,
        seconds=time.perf_counter() - start,
        sigma_seconds=sigma_seconds,
    )
    if windows is not None:
        return choice, None, None
    init, dual = start_from(chosen, count)
    return choice, init, dual


def _ignore(stage: Stage) -> None:
    pass


def search_windows(height: int, width: int) -> list[tuple[int, int, int]] | None:
    """The tiles ``(top, left, side)`` the weight search runs on for an image of
    ``height x width`` pixels, or None when it is searched whole (at most ``TILED_FROM``
    pixels).

    About ``SEARCH_TILES`` square tiles of ``SEARCH_TILE`` pixels (less on a narrow image),
    on a grid shaped like the image, each centred in its cell.
    """
    if height * width <= TILED_FROM:
        return None
    side = min(SEARCH_TILE, height, width)
    rows = min(max(round(math.sqrt(SEARCH_TILES * height / width)), 1), height // side)
    cols = min(max(SEARCH_TILES // rows, 1), width // side)
    return [
        (round((height - side) * (i + 0.5) / rows), round((width - side) * (j + 0.5) / cols), side)
        for i in range(rows)
        for j in range(cols)
    ]


def take_windows(values: torch.Tensor, windows: list[tuple[int, int, int]]) -> torch.Tensor:
    """The tiles ``(top, left, side)`` of a batch ``(N, C, H, W)`` as one batch
    ``(N * tiles, C, side, side)``, tile after tile."""
    return torch.cat(
        [values[..., top : top + side, left : left + side] for top, left, side in windows]
    )


def central_window(height: int, width: int, side: int) -> tuple[slice, slice]:
    """The rows and columns of the central ``side`` x ``side`` window of a ``height x width``
    image (or less, where the image is smaller)."""
    top, left = max((height - side) // 2, 0), max((width - side) // 2, 0)
    return slice(top, top + side), slice(left, left + side)


def central_crop(values: Any, side: int) -> Any:
    """The central ``side`` x ``side`` window (or less, where the image is smaller) of the
    last two axes of an array or tensor."""
    rows, columns = central_window(values.shape[-2], values.shape[-1], side)
    return values[..., rows, columns]


def _lowest(risks: dict[float, float]) -> tuple[float, float]:
    """The minimum of the risk: the vertex of the parabola through the lowest measured point
    and its neighbours on each side, or the lowest point itself at an end."""
    points = sorted(risks.items())
    index = min(range(len(points)), key=lambda k: points[k][1])
    if 0 < index < len(points) - 1:
        return parabola_vertex(points[index - 1], points[index], points[index + 1])
    return points[index]


def parabola_vertex(
    left: tuple[float, float], middle: tuple[float, float], right: tuple[float, float]
) -> tuple[float, float]:
    """Minimum ``(x, y)`` of the parabola through three points, the middle one lowest.

    ``x`` is kept inside ``[left x, right x]``.
    """
    (x0, y0), (x1, y1), (x2, y2) = left, middle, right
    # Divided differences: y = y1 + b (x - x1) + c (x - x1)^2 through the three points.
    slope_left, slope_right = (y1 - y0) / (x1 - x0), (y2 - y1) / (x2 - x1)
    c = (slope_right - slope_left) / (x2 - x0)
    if not c > 0:
        return x1, y1
    b = slope_left + c * (x1 - x0)
    x = min(max(x1 - b / (2 * c), x0), x2)
    return x, y1 + b * (x - x1) + c * (x - x1) ** 2


def refuse_non_gaussian(fidelity: str) -> None:
    """SURE needs Gaussian noise: refuse ``weight="auto"`` for any fidelity but L2."""
    if fidelity != "l2":
        raise InvalidParameterError(
            f"weight='auto' needs fidelity l2 (its risk estimate assumes Gaussian noise), "
            f"got fidelity {fidelity!r}; pass a number as weight"
        )
