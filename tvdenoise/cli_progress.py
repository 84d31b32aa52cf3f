"""The command line's live progress on stderr: one line per running image, one for the batch.

Each image's line shows its stage (reading, estimating noise, choosing the weight, solving,
writing; :mod:`tvdenoise.progress`), and while it is solved a bar of the way from the first
gap measured to the gap at which the solver stops, on a log scale, with the gap and that
target beside it (by iterations of ``--max-iter`` where the solver has no gap or the target
is 0). Lines come with the first event of an image and go with its result, so under
``--workers`` and ``--dask-scheduler`` the images being worked on are the ones shown.

It is drawn (rich's multi-task Progress) only when stderr is a terminal and ``--quiet`` is
not given, and it never touches stdout, which carries ``--json`` lines and ``-o -`` images.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from .progress import FrameProgress, SolveProgress, Stage

if TYPE_CHECKING:
    from .planning import Job

__all__ = ["LiveProgress"]

#: Steps of a solve's bar (its fraction of the way, times this).
BAR_STEPS = 1000


class LiveProgress:
    """The live display of a run of ``images`` jobs on ``console``; drawn when ``enabled``.
    ``opening`` says what happens before the first image's first event (workers starting).

    Use it as a context manager; :meth:`event` takes the runners' ``on_progress(job,
    event)`` calls, :meth:`finished` an image's result. :attr:`wants_events` says whether
    the runners need to send events at all (worker processes and Dask workers send none
    otherwise).
    """

    def __init__(self, console: Console, images: int, *, enabled: bool, opening: str = "") -> None:
        self.wants_events = enabled
        self.progress = Progress(
            TextColumn("{task.description}"),
            TextColumn("{task.fields[stage]}"),
            BarColumn(),
            TextColumn("{task.fields[count]}"),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=console,
            disable=not enabled,
            transient=True,
            # stdout is the results' (--json, -o -): never send it through the display.
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self.images = images
        self.done = 0
        self.overall: TaskID | None = None
        if images > 1:
            self.overall = self._add("images", total=images, count=f"0/{images}")
        self.opening: TaskID | None = None
        if opening:
            self.opening = self.overall if self.overall is not None else self._add("", total=None)
            self.progress.update(self.opening, stage=opening)
        self.lines: dict[str, TaskID] = {}
        self.bars: set[str] = set()  # images whose line shows a solve's bar
        self.ended: set[str] = set()  # images whose result came: later events are stale

    @property
    def console(self) -> Console:
        return self.progress.console

    def __enter__(self) -> LiveProgress:
        self.progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        for task_id in list(self.progress.task_ids):
            self.progress.remove_task(task_id)
        self.progress.stop()

    def _add(self, description: str, *, total: float | None, count: str = "") -> TaskID:
        return self.progress.add_task(description, total=total, stage="", count=count, status="")

    def event(self, job: Job, event: Any) -> None:
        """Show a progress event of ``job`` on its line (made with its first event)."""
        if job.label in self.ended:
            return  # sent before the result, received after it
        task = self.lines.get(job.label)
        fresh = task is None
        if self.opening is not None:
            if self.opening == self.overall:
                self.progress.update(self.opening, stage="")
            else:
                self.progress.remove_task(self.opening)
            self.opening = None
        if task is None:
            name = job.label if job.source is None else job.source.name
            task = self.lines[job.label] = self._add(name, total=None)
        update = self.progress.update
        if isinstance(event, Stage):
            self.bars.discard(job.label)
            # Until the solve's first gap, and in the stages without one, a pulsing bar.
            update(task, stage=str(event), total=None, completed=0, count="", status="")
            self.progress.refresh()  # a stage shows at once, however short
        elif isinstance(event, SolveProgress):
            update(
                task,
                total=BAR_STEPS,
                completed=round(event.fraction * BAR_STEPS),
                count=f"{event.fraction:4.0%}" if event.by_gap else "",
                status=_solve_status(event),
            )
            if job.label not in self.bars:
                self.bars.add(job.label)
                self.progress.refresh()
        elif isinstance(event, FrameProgress):
            total = event.total or None
            count = f"{event.frames}/{event.total} frames" if total else f"{event.frames} frames"
            update(task, total=total, completed=event.frames, count=count)
        if fresh:
            self.progress.refresh()

    def finished(self, job_label: str) -> None:
        """An image's result came: its line goes, the batch's count moves on."""
        self.ended.add(job_label)
        self.bars.discard(job_label)
        task = self.lines.pop(job_label, None)
        if task is not None:
            self.progress.remove_task(task)
        self.done += 1
        if self.overall is not None:
            self.progress.update(
                self.overall, completed=self.done, count=f"{self.done}/{self.images}"
            )


def _solve_status(event: SolveProgress) -> str:
    """``gap 3.1e-03 -> 4.2e-04`` (the gap and its target), or the iterations where the bar
    goes by them."""
    if event.by_gap:
        return f"gap {event.gap:.1e} -> {event.target:.1e}"
    iterations = f"{event.iteration}/{event.max_iter} iterations"
    return iterations if event.gap is None else f"{iterations}, gap {event.gap:.1e}"
