"""What every solver shares: the problem, the per-iteration report, the result record."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch

from ..errors import InvalidParameterError
from ..fidelity import Fidelity
from ..nonlocal_graph import NonlocalGraph
from ..tv import tv_map


@dataclass(frozen=True)
class Problem:
    """``min_u fidelity(u, f) + weight * TV_beta(u)`` for a batch ``f``.

    ``f`` is ``(N, C, H, W)`` (images) or ``(N, C, D, H, W)`` (volumes, 3-D differences);
    ``spacing`` is the grid step per spatial axis (None: all 1). ``tv="tgv"`` is second-order
    TGV with ``alpha1 = weight`` and ``alpha0 = tgv_ratio * weight``
    (:mod:`tvdenoise.solvers.tgv`); ``tv="nonlocal"`` is TV on ``graph``
    (:class:`tvdenoise.nonlocal_graph.NonlocalGraph`, one per image of the batch).
    """

    f: torch.Tensor
    weight: float
    beta: float
    tv: str
    color: str
    fidelity: Fidelity
    eps: float = 0.0
    spacing: tuple[float, ...] | None = None
    tgv_ratio: float = 2.0
    graph: NonlocalGraph | None = None

    @property
    def ndim(self) -> int:
        """Number of spatial axes: 2 for images, 3 for volumes."""
        return self.f.dim() - 2

    @property
    def symmetric(self) -> bool:
        """Whether TV averages the forward and backward stencils (``tv="symmetric"``)."""
        return self.tv == "symmetric"

    @property
    def dual_components(self) -> int:
        """Components of the dual variable per channel and pixel: one per spatial axis, twice
        that for symmetric TV (its forward and backward stencils); for TGV the state ``(p, q,
        w)``, ``2 ndim + ndim (ndim + 1) / 2``; for nonlocal TV one per graph neighbour."""
        if self.tv == "tgv":
            return 2 * self.ndim + self.ndim * (self.ndim + 1) // 2
        if self.tv == "nonlocal":
            return self.nonlocal_graph.neighbours
        return self.ndim * (2 if self.symmetric else 1)

    @property
    def nonlocal_graph(self) -> NonlocalGraph:
        """The graph of ``tv="nonlocal"`` (raises when the problem has none)."""
        if self.graph is None:
            raise InvalidParameterError("tv='nonlocal' needs a graph (tvdenoise.nonlocal_graph)")
        return self.graph

    def regularisation(self, u: torch.Tensor) -> torch.Tensor:
        """Per-sample ``weight * TV_beta(u)`` (with this problem's smoothing), in float64.

        For nonlocal TV the graph TV; TGV has no closed form in ``u`` alone (it is a minimum
        over ``w``: see :func:`tvdenoise.solvers.tgv.tgv_energy`)."""
        if self.tv == "nonlocal":
            return self.weight * self.nonlocal_graph.total_variation(u, self.color)
        if self.tv == "tgv":
            raise InvalidParameterError(
                "TGV's value needs the field w as well: use tvdenoise.solvers.tgv.tgv_energy"
            )
        terms = tv_map(u, self.beta, self.tv, self.color, self.eps, self.spacing)
        return self.weight * terms.double().sum(dim=tuple(range(1, terms.dim())))

    def energy(self, u: torch.Tensor) -> torch.Tensor:
        """Per-sample energy of ``u`` (with this problem's smoothing), summed in float64."""
        return self.fidelity.value(u, self.f) + self.regularisation(u)


@dataclass(frozen=True)
class IterationInfo:
    """What a solver reports to the callback at an evaluated iteration.

    ``energy`` is summed over the batch; ``gap`` is the largest relative primal-dual gap (or
    certified bound) over the batch, None where the solver has none; ``relative_change`` is
    ``||u_k - u_{k-1}|| / ||u_k||``. ``target`` is the gap at which the solve stops: the
    tolerance, or, where the solver also stops once its certified distance to the minimiser
    is within a precision (the ``distance`` of :func:`tvdenoise.solvers.solve`), the larger
    of the tolerance and the relative gap that distance amounts to at this energy
    (:func:`precision_gap`); None where there is no gap. A progress display measures the way
    from the first gap to it (:mod:`tvdenoise.progress`).
    """

    iteration: int
    energy: float
    gap: float | None
    relative_change: float | None
    seconds: float
    target: float | None = None


Callback = Callable[[IterationInfo], object]


@dataclass
class SolveRecord:
    """How a solve went: the figures a report or a user needs."""

    solver: str
    iterations: int
    energy: float
    gap: float | None
    relative_change: float | None
    converged: bool
    seconds: float
    stop_reason: str
    local_minimum: bool = False
    eps: float = 0.0
    history: list[IterationInfo] = field(default_factory=list)
    #: Iterations of the coarse levels of a coarse-to-fine solve, in fine-level equivalents
    #: (each level's iterations times its share of the fine pixels; 0 for a cold solve).
    coarse_work: float = 0.0

    @property
    def energies(self) -> list[float]:
        """Energy at each evaluated iteration (see ``history`` for the iteration numbers)."""
        return [h.energy for h in self.history]


def combine_records(records: list[SolveRecord]) -> SolveRecord:
    """One record for an image solved in parts (the pages of a stack, the tiles of a large
    image): iterations, energies and seconds summed, the largest gap and relative change,
    converged only if every part converged; the per-iteration history is dropped."""
    gaps = [r.gap for r in records]
    changes = [r.relative_change for r in records]
    unconverged = [r.stop_reason for r in records if not r.converged]
    return replace(
        records[0],
        iterations=sum(r.iterations for r in records),
        energy=sum(r.energy for r in records),
        gap=None if None in gaps else max(g for g in gaps if g is not None),
        relative_change=None if None in changes else max(c for c in changes if c is not None),
        converged=all(r.converged for r in records),
        seconds=sum(r.seconds for r in records),
        coarse_work=sum(r.coarse_work for r in records),
        stop_reason=unconverged[0] if unconverged else records[0].stop_reason,
        local_minimum=any(r.local_minimum for r in records),
        history=[],
    )


class Monitor:
    """Shared book-keeping: timing, callback, stopping on tol / max_iter / time_limit."""

    def __init__(
        self,
        solver: str,
        max_iter: int,
        tol: float,
        callback: Callback | None,
        check_every: int,
        time_limit: float | None,
    ) -> None:
        self.solver = solver
        self.max_iter = max_iter
        self.tol = tol
        self.callback = callback
        self.check_every = check_every
        self.time_limit = time_limit
        self.start = time.perf_counter()
        self.history: list[IterationInfo] = []
        self.stop_reason = "max_iter"
        self.converged = False

    def due(self, iteration: int) -> bool:
        return iteration % self.check_every == 0 or iteration == self.max_iter

    def report(
        self,
        iteration: int,
        energy: torch.Tensor,
        gap: float | None,
        relative_change: float | None,
        criterion: float,
        precise: bool = False,
        precision: float | None = None,
    ) -> bool:
        """Record one evaluation; return True when the solver should stop: ``criterion <=
        tol`` (stop reason ``"tol"``), or ``precise``, the certified distance to the
        minimiser below the caller's precision (``"precision"``; see
        :func:`certified_distance`). ``precision`` is the relative gap at which ``precise``
        holds (:func:`precision_gap`), for the report's ``target``."""
        target = None
        if gap is not None:
            target = self.tol if precision is None else max(self.tol, precision)
        info = IterationInfo(
            iteration=iteration,
            energy=float(energy.sum()),
            gap=gap,
            relative_change=relative_change,
            seconds=time.perf_counter() - self.start,
            target=target,
        )
        self.history.append(info)
        if self.callback is not None:
            self.callback(info)
        if not math.isfinite(info.energy):
            self.stop_reason = "diverged"
            return True
        if criterion <= self.tol:
            self.converged = True
            self.stop_reason = "tol"
            return True
        if precise:
            self.converged = True
            self.stop_reason = "precision"
            return True
        if self.time_limit is not None and info.seconds >= self.time_limit:
            self.stop_reason = "time_limit"
            return True
        return False

    def record(self, iterations: int, **extra: object) -> SolveRecord:
        last = self.history[-1]
        return SolveRecord(
            solver=self.solver,
            iterations=iterations,
            energy=last.energy,
            gap=last.gap,
            relative_change=last.relative_change,
            converged=self.converged,
            seconds=time.perf_counter() - self.start,
            stop_reason=self.stop_reason,
            history=self.history,
            **extra,  # type: ignore[arg-type]
        )


def certified_distance(
    energy: torch.Tensor, dual_value: torch.Tensor, values: int, strong_convexity: float
) -> float:
    """A certified bound on the root-mean-square distance to the exact minimiser, the largest
    over the batch: ``sqrt(2 (E(u) - D(p)) / (mu n))`` for ``n`` values per sample.

    With a fidelity that is ``mu``-strongly convex (``mu = 1`` for L2) the energy satisfies
    ``E(u) - E* >= mu/2 ||u - u*||^2``, and the dual value bounds ``E* >= D(p)``, so the
    primal-dual gap bounds the distance. Infinite where ``mu = 0`` (L1, Poisson: the gap
    certifies the energy, not the distance).
    """
    if not strong_convexity > 0:
        return math.inf
    gap = float((energy - dual_value).max().clamp(min=0.0))
    return math.sqrt(2.0 * gap / (strong_convexity * max(values, 1)))


def precision_gap(
    energy: torch.Tensor, values: int, strong_convexity: float, distance: float | None
) -> float | None:
    """The relative gap at which :func:`certified_distance` reaches ``distance``:
    ``mu distance^2 n / (2 |E|)``, with the largest energy of the batch (exact for one
    image; a batch stops on its largest absolute gap). None without a distance or where the
    fidelity is not strongly convex (``mu = 0``: the distance is never certified)."""
    if distance is None or not strong_convexity > 0:
        return None
    absolute = strong_convexity * distance**2 * max(values, 1) / 2.0
    return absolute / max(float(energy.abs().max()), 1e-300)


def relative_gap(energy: torch.Tensor, lower: torch.Tensor, pooled: bool = False) -> float:
    """The relative gap ``(E(u) - D) / |E(u)|`` of a batch: the largest over its samples, or
    with ``pooled`` the batch's total gap over its total energy (a batch of tiles standing
    for one image, whose sum is what the caller uses)."""
    if pooled:
        total = float(energy.abs().sum())
        return max(float((energy - lower).sum()) / max(total, 1e-300), 0.0)
    return float(((energy - lower) / energy.abs().clamp(min=1e-300)).max().clamp(min=0.0))


def relative_change(u: torch.Tensor, previous: torch.Tensor) -> float:
    """``||u - previous|| / ||u||`` over the whole batch (0 when both are 0)."""
    num = torch.linalg.vector_norm((u - previous).double())
    den = torch.linalg.vector_norm(u.double())
    return float(num / den) if den > 0 else float(num)
