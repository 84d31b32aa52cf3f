"""Running a list of jobs: one image at a time in this process, or in worker processes.

:func:`run_jobs` runs the jobs serially (same-size images in batches when ``batch_size`` asks
for it) or in a pool of worker processes, each started once (torch imported once per worker,
not per image) with its share of the CPU cores. It stops cleanly when asked: the image in
progress is abandoned at its next iteration check (nothing is written for it; writes are
atomic), finished outputs stay, the rest is not started. A worker that dies (the
out-of-memory killer's SIGKILL, a crash) fails only the image it held, after one retry; the
pool is replaced and the batch goes on.

One image's work is :func:`tvdenoise.batch.process_job`; a Dask cluster's is
:mod:`tvdenoise.distributed`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from .batch import (
    Interrupted,
    JobResult,
    StopFlag,
    _solve_batches,
    describe_error,
    fault_injection,
    process_job,
    usable_cores,
)
from .planning import Job
from .progress import throttled

if TYPE_CHECKING:
    from .settings import RunSettings

__all__ = ["RETRIES_AFTER_DEATH", "describe_death", "run_jobs"]

_worker_stop: StopFlag | None = None


def _init_worker(
    threads: int, stop: StopFlag, started: Any = None, parent: int | None = None
) -> None:
    """Run once per worker process: its share of the cores, the stop signals, and a watch on
    the main process ``parent``."""
    import signal
    import threading

    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()

    global _worker_stop, _worker_started
    _worker_stop = stop
    _worker_started = started
    # Ctrl-C reaches the whole process group: the parent decides, workers ignore it. A
    # SIGTERM sent to the group (a scheduler's time limit) stops the worker's current image.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    import torch

    torch.set_num_threads(threads)


_worker_started: Any = None

#: The shortest time between two solve updates a worker sends its parent (stages always go).
PROGRESS_SECONDS = 0.2

#: How often a worker checks that the main process still exists (seconds).
PARENT_CHECK_SECONDS = 0.5


def _process_exists(pid: int) -> bool:
    """Whether process ``pid`` is running (a zombie, killed but not yet reaped, is not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except FileNotFoundError:
        return False
    except (OSError, IndexError):  # no /proc (macOS): only whether the pid exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _exit_with(parent: int) -> None:
    """End this worker once the main process is gone. A main process killed with SIGKILL (the
    out-of-memory killer, a scheduler) cannot stop its pool, and the workers, children of the
    fork server, would otherwise wait for work forever, each holding its memory. An image in
    progress is abandoned as by Ctrl-C: its output is written atomically, so at most a
    temporary file is left, which the next run removes, and its claim names this process, so
    the next ``--skip-existing`` run takes it over."""
    while True:
        time.sleep(PARENT_CHECK_SECONDS)
        if not _process_exists(parent):
            os._exit(1)


def _worker_job(
    key: int, job: Job, settings: RunSettings, overwrite: bool, report: bool, progress: bool = False
) -> JobResult:
    queue = _worker_started
    if queue is not None:  # tell the parent which process holds which image
        queue.put((os.getpid(), key, None))
    fault_injection(job)
    on_progress = None
    if progress and queue is not None:  # the image's progress events, at most 5 a second
        pid = os.getpid()
        on_progress = throttled(lambda event: queue.put((pid, key, event)), PROGRESS_SECONDS)
    result = process_job(
        job,
        settings,
        overwrite=overwrite,
        stop=_worker_stop,
        report=report,
        on_progress=on_progress,
    )
    if _worker_started is not None:
        # Also through the queue: if another worker breaks the pool before this result is
        # collected, the parent still has it (and does not do the image twice).
        _worker_started.put((os.getpid(), key, result))
    return result


def describe_death(exitcode: int | None) -> str:
    """What happened to a worker process, from its exit code (negative: killed by a signal)."""
    import signal

    if exitcode is None:
        return "worker process ended abruptly"
    if exitcode < 0:
        number = -exitcode
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        hint = " (out of memory?)" if number == signal.SIGKILL else f" ({name})"
        return f"worker killed by signal {number}{hint}"
    if exitcode == 255:
        # What a fork-server pool reports when the server could not read the real status.
        return "worker ended abruptly (killed? out of memory?)"
    return f"worker exited abruptly (exit code {exitcode})"


def _pool_context() -> Any:
    """forkserver where there is one: a clean server process imports torch once and forks
    the workers from it (safe, unlike forking a process with threads); spawn elsewhere."""
    import multiprocessing

    if sys.platform.startswith("linux"):
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["torch", "tvdenoise.denoising", "tvdenoise.image_io"])
        return context
    return multiprocessing.get_context("spawn")  # pragma: no cover


def run_jobs(
    jobs: list[Job],
    settings: RunSettings,
    *,
    workers: int | None = None,
    stop: StopFlag | None = None,
    stdin_data: bytes | None = None,
    on_start: Callable[[Job], object] | None = None,
    on_progress: Callable[[Job, Any], object] | None = None,
    report: bool = False,
) -> Iterator[JobResult]:
    """Run the jobs; yield each result as it finishes (in finishing order).

    With ``workers > 1`` (default ``settings.exec.workers``) the jobs run in that many worker
    processes, each with ``usable_cores() // workers`` torch threads; an existing output is
    replaced only with ``settings.output.overwrite``. Once ``stop`` is set, no new job starts, the
    ones running stop at their next iteration check and are yielded as "interrupted", and the
    jobs never started are not yielded at all.

    ``on_start(job)`` is called as a job is started (in a pool: handed to the pool), and
    ``on_progress(job, event)`` with each progress event of a job that is running
    (:func:`~tvdenoise.batch.process_job` says which), in this process, in the thread that
    iterates over the results; worker processes send theirs back through the result queue,
    solve updates at most every :data:`PROGRESS_SECONDS`.
    """
    workers = settings.exec.workers if workers is None else workers
    overwrite = settings.output.overwrite
    if workers <= 1 or len(jobs) <= 1:
        size = settings.exec.batch_size if settings.batching else 1
        for first in range(0, len(jobs), size):
            chunk = jobs[first : first + size]
            solved: dict[int, tuple[Any, Any, Any]] = {}
            if len(chunk) > 1:
                if stop is not None and stop.is_set():
                    return
                for job in chunk:
                    if on_start is not None:
                        on_start(job)
                try:
                    solved = _solve_batches(chunk, settings, stop, on_progress)
                except Interrupted:  # the stop flag is set: each job reports "interrupted"
                    for job in chunk:
                        yield process_job(job, settings, stop=stop, report=report)
                    return
            for index, job in enumerate(chunk):
                if stop is not None and stop.is_set():
                    return
                if on_start is not None and len(chunk) == 1:
                    on_start(job)
                yield process_job(
                    job,
                    settings,
                    overwrite=overwrite,
                    stdin_data=stdin_data if job.source is None else None,
                    stop=stop,
                    on_progress=_for_job(on_progress, job),
                    report=report,
                    solved=solved.get(index),
                )
        return

    yield from _run_in_pool(jobs, settings, workers, overwrite, stop, on_start, on_progress, report)


def _for_job(
    on_progress: Callable[[Job, Any], object] | None, job: Job
) -> Callable[[Any], object] | None:
    """``on_progress`` with ``job`` filled in (None stays None)."""
    if on_progress is None:
        return None
    return lambda event: on_progress(job, event)


#: How often an image whose worker died is tried again (then it fails with the cause).
RETRIES_AFTER_DEATH = 1


class _Pool:
    """A process pool with the bookkeeping to tell which image a dying worker held."""

    def __init__(self, workers: int) -> None:
        context = _pool_context()
        self.stop = context.Event()
        self.started = context.SimpleQueue()
        self.executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(max(1, usable_cores() // workers), self.stop, self.started, os.getpid()),
        )
        self.holder: dict[int, int] = {}  # job key -> pid of the worker that took it
        self.finished: dict[int, JobResult] = {}  # job key -> its result, as the worker sent it
        self.processes: dict[int, Any] = {}  # pid -> multiprocessing.Process
        self.events: list[tuple[int, Any]] = []  # (job key, progress event), not yet handed on

    def note_progress(self) -> None:
        # The executor forgets its processes once broken: keep our own references.
        self.processes.update(getattr(self.executor, "_processes", None) or {})
        while not self.started.empty():
            pid, key, payload = self.started.get()
            self.holder[key] = pid
            if isinstance(payload, JobResult):
                self.finished[key] = payload
            elif payload is not None:
                self.events.append((key, payload))

    def take_events(self) -> list[tuple[int, Any]]:
        """The progress events received since the last call, in order."""
        events, self.events = self.events, []
        return events

    def cause_of_death(self, key: int) -> str | None:
        """Why the worker that held job ``key`` died; None if it was not running it, or its
        worker did not die (it was stopped because another one broke the pool)."""
        self.note_progress()
        pid = self.holder.get(key)
        process = self.processes.get(pid) if pid is not None else None
        if process is None:
            return None
        import signal

        # The dead worker has exited by the time the pool reports broken; the others are
        # being stopped by the executor (SIGTERM, which our workers turn into "stop the
        # image", so they may end with any exit status) or are still finishing: innocent.
        process.join(timeout=0.2)
        code = process.exitcode
        if code in (None, 0, -signal.SIGTERM):
            return None
        if code > 0 and any(
            other.exitcode is not None and other.exitcode < 0 and other.exitcode != -signal.SIGTERM
            for other in self.processes.values()
        ):
            return None  # another worker was killed by a signal: that one broke the pool
        return describe_death(code)

    def close(self, wait_for_workers: bool) -> None:
        with contextlib.suppress(Exception):
            self.executor.shutdown(wait=wait_for_workers, cancel_futures=True)
        if wait_for_workers:
            return
        # A broken pool: end what is left of it. A worker killed while it held the call
        # queue's read end can leave the queue's feeder thread blocked on a pipe nobody
        # reads, and the interpreter joins that thread at exit: the command then printed its
        # summary and never exited (seen once in CI). So the survivors are killed and that
        # thread is not joined.
        with contextlib.suppress(Exception):
            for process in self.processes.values():
                if process.exitcode is None:
                    process.kill()
        with contextlib.suppress(Exception):
            self.executor._call_queue.cancel_join_thread()  # type: ignore[attr-defined]


def _run_in_pool(
    jobs: list[Job],
    settings: RunSettings,
    workers: int,
    overwrite: bool,
    stop: StopFlag | None,
    on_start: Callable[[Job], object] | None,
    on_progress: Callable[[Job, Any], object] | None,
    report: bool,
) -> Iterator[JobResult]:
    """:func:`run_jobs` with worker processes. A worker that dies (a signal such as the
    out-of-memory killer's SIGKILL, or an abrupt exit) breaks the pool: the image it held is
    tried once more in a new pool and fails with the cause if its worker dies again; the
    other images it interrupted start again; the batch goes on."""
    from concurrent.futures.process import BrokenProcessPool

    pool = _Pool(workers)
    pending: dict[Future[JobResult], int] = {}
    queue = list(reversed(range(len(jobs))))
    deaths: dict[int, list[str]] = {}
    started: set[int] = set()
    tried: set[int] = set()
    existed: dict[int, bool] = {}

    def after_break(key: int) -> JobResult | None:
        """Job ``key``'s outcome when its pool broke: the result it finished, a failure once
        its worker has died too often, or None when it goes back on the queue."""
        pool.note_progress()
        if key in pool.finished:  # done before the break: its result came through the queue
            finished = pool.finished.pop(key)
            # The executor stops a broken pool's other workers with SIGTERM, which our workers
            # take as "stop the current image": unless this run was asked to stop, redo it.
            if finished.status != "interrupted" or (stop is not None and stop.is_set()):
                return finished
        else:
            cause = pool.cause_of_death(key)  # None: its worker did not die, run it again
            if cause is not None:
                deaths.setdefault(key, []).append(cause)
                if len(deaths[key]) > RETRIES_AFTER_DEATH:
                    tries = len(deaths[key])
                    return _failed(jobs[key], f"{cause} (tried {tries} times)")
        queue.append(key)
        return None

    try:
        # Keep each worker fed with one job in hand, not the whole list: a stop then has only
        # the running images to wait for, and results stream back in order of completion.
        while queue or pending:
            stopping = stop is not None and stop.is_set()
            if stopping:
                pool.stop.set()
                queue.clear()
                for future in [f for f in pending if f.cancel()]:
                    del pending[future]
            while queue and len(pending) < 2 * workers:
                key = queue.pop()
                job = jobs[key]
                if key not in started:
                    if on_start is not None:
                        on_start(job)
                    # Whether the output was there before this run: a second attempt may
                    # replace what the first one wrote, never a file this run did not write.
                    existed[key] = job.target is not None and job.target.exists()
                started.add(key)
                again = overwrite or (key in tried and not existed[key])
                future = pool.executor.submit(
                    _worker_job, key, job, settings, again, report, on_progress is not None
                )
                pending[future] = key
                tried.add(key)
            if not pending:
                break
            done, _ = wait(list(pending), timeout=0.1, return_when=FIRST_COMPLETED)
            pool.note_progress()
            for key, event in pool.take_events():
                if on_progress is not None:
                    on_progress(jobs[key], event)
            broken = False
            for future in done:
                key = pending.pop(future)
                job = jobs[key]
                try:
                    result = future.result()
                    pool.finished.pop(key, None)
                except BrokenProcessPool:
                    broken = True
                    settled = after_break(key)
                    if settled is not None:
                        yield settled
                    continue
                except Exception as error:  # anything else a worker cannot return
                    yield _failed(job, describe_error(job.label, error))
                    continue
                if key in deaths and result.status == "ok":
                    result.record["retried_after"] = deaths[key][0]
                yield result
            if broken:
                # Every future of a broken pool fails; whatever was still pending (not yet
                # collected above) goes back on the queue, and a new pool takes over.
                for future, key in list(pending.items()):
                    del pending[future]
                    if future.done() and not future.cancelled() and future.exception() is None:
                        yield future.result()  # finished just before the break
                        continue
                    settled = after_break(key)
                    if settled is not None:
                        yield settled
                queue.sort(reverse=True)  # the file order again
                pool.close(wait_for_workers=False)
                if not (stop is not None and stop.is_set()):
                    pool = _Pool(workers)
    finally:
        if stop is not None and stop.is_set():
            pool.stop.set()
        pool.close(wait_for_workers=True)


def _failed(job: Job, message: str) -> JobResult:
    if not message.startswith(job.label):
        message = f"{job.label}: {message}"
    return JobResult(job.label, job.target_label, "failed", error=message)
