"""Progress events: what the work on an image is doing, for a caller to show.

The library never prints. :func:`tvdenoise.denoise` reports its stages to ``on_stage``
(estimating noise, choosing the weight, solving) and its evaluated iterations to
``callback``; :func:`tvdenoise.batch.process_job` adds reading and writing and turns the
iterations into :class:`SolveProgress`, the way to the solver's stop on a log scale of the
gap; the command line draws them. The events are small frozen dataclasses of plain values,
free of torch and numpy, so worker processes send them back through their result queue and
Dask workers as messages (:func:`to_message`, :func:`from_message`).

Examples
--------
>>> str(Stage(CHOOSING, "trial 3"))
'choosing the weight (trial 3)'
>>> round(gap_fraction(first=1e-1, gap=1e-2, target=1e-3), 3)  # half way, in decades
0.5
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import astuple, dataclass
from typing import Any

__all__ = [
    "CHOOSING",
    "ESTIMATING",
    "READING",
    "SOLVING",
    "STAGES",
    "WRITING",
    "FrameProgress",
    "SolveMeter",
    "SolveProgress",
    "Stage",
    "from_message",
    "gap_fraction",
    "throttled",
    "to_message",
]

READING = "reading"
ESTIMATING = "estimating noise"
CHOOSING = "choosing the weight"
SOLVING = "solving"
WRITING = "writing"
#: The stages of an image, in the order they come (noise and weight only with weight auto).
STAGES = (READING, ESTIMATING, CHOOSING, SOLVING, WRITING)


@dataclass(frozen=True)
class Stage:
    """A stage begins: ``name`` is one of :data:`STAGES`; ``detail`` says which part, such
    as ``"trial 3"`` of the weight search or ``"tile 2 of 6"`` of a tiled solve."""

    name: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.name} ({self.detail})" if self.detail else self.name


@dataclass(frozen=True)
class SolveProgress:
    """A solve's progress at an evaluated iteration.

    ``gap`` is the relative gap measured (None for solvers without one), ``first_gap`` the
    first one this solve measured, and ``target`` the gap at which it stops: the tolerance,
    or the gap at which the certified distance reaches the output's precision when that is
    larger (:attr:`tvdenoise.solvers.IterationInfo.target`).
    """

    iteration: int
    max_iter: int
    gap: float | None = None
    first_gap: float | None = None
    target: float | None = None

    @property
    def fraction(self) -> float:
        """The share of the way done, from 0 to 1: by the gap on a log scale
        (:func:`gap_fraction`) when there is one to go by, else by iterations of
        ``max_iter``."""
        by_gap = gap_fraction(self.first_gap, self.gap, self.target)
        if by_gap is not None:
            return by_gap
        return min(max(self.iteration / max(self.max_iter, 1), 0.0), 1.0)

    @property
    def by_gap(self) -> bool:
        """Whether :attr:`fraction` goes by the gap (else by iterations)."""
        return gap_fraction(self.first_gap, self.gap, self.target) is not None


@dataclass(frozen=True)
class FrameProgress:
    """Reported to ``on_progress`` as frames are written: ``frames`` so far of ``total``
    (0 when the container does not say how many)."""

    frames: int
    total: int


def gap_fraction(first: float | None, gap: float | None, target: float | None) -> float | None:
    """How far a gap has come from ``first`` towards ``target``, on a log scale, from 0 to 1:
    ``log(first / gap) / log(first / target)``. 1 once ``gap <= target``; None when there is
    nothing to go by (no gap, or a target that is not positive: ``tol = 0`` and no precision
    stop, which only ``max_iter`` ends).

    >>> gap_fraction(1e-2, 1e-2, 1e-4), gap_fraction(1e-2, 1e-5, 1e-4), gap_fraction(1e-2, 1e-3, 0)
    (0.0, 1.0, None)
    """
    if first is None or gap is None or target is None or not target > 0:
        return None
    if gap <= target:
        return 1.0
    if first <= target or gap >= first:
        return 0.0
    return min(max(math.log(first / gap) / math.log(first / target), 0.0), 1.0)


class SolveMeter:
    """Turns a solver's reports (:class:`tvdenoise.solvers.IterationInfo`) into
    :class:`SolveProgress`, remembering the first gap of each solve. A solve starts anew
    after :meth:`restart` (at each :data:`SOLVING` stage) or when the iteration count goes
    back (the next tile or page)."""

    def __init__(self, max_iter: int) -> None:
        self.max_iter = max_iter
        self.restart()

    def restart(self) -> None:
        self.first: float | None = None
        self.iteration = 0

    def __call__(self, info: Any) -> SolveProgress:
        if info.iteration < self.iteration:
            self.restart()
        self.iteration = info.iteration
        gap = info.gap
        if self.first is None and gap is not None:
            self.first = gap
        return SolveProgress(
            info.iteration, self.max_iter, gap, self.first, getattr(info, "target", None)
        )


def throttled(send: Callable[[Any], object], seconds: float) -> Callable[[Any], None]:
    """``send``, passing on every event but :class:`SolveProgress` and :class:`FrameProgress`
    updates closer than ``seconds`` to the last one sent (the last of a solve, at its stop,
    is sent; the others are only drawn over). For events that cross a process boundary."""
    last = -math.inf

    def forward(event: Any) -> None:
        nonlocal last
        if isinstance(event, (SolveProgress, FrameProgress)):
            now = time.monotonic()
            done = isinstance(event, SolveProgress) and event.fraction >= 1.0
            if now - last < seconds and not done:
                return
            last = now
        else:
            last = -math.inf  # the first update after a new stage is always sent
        send(event)

    return forward


_KINDS: dict[str, type[Any]] = {
    "stage": Stage,
    "solve": SolveProgress,
    "frames": FrameProgress,
}


def to_message(event: Any) -> list[Any]:
    """An event as a list of plain values (for transports that take no Python objects)."""
    for kind, cls in _KINDS.items():
        if type(event) is cls:
            return [kind, *astuple(event)]
    raise TypeError(f"not a progress event: {event!r}")


def from_message(message: list[Any] | tuple[Any, ...]) -> Any:
    """The event :func:`to_message` made ``message`` from."""
    kind, *values = message
    return _KINDS[kind](*values)
