"""Running jobs on an existing Dask cluster (``tvdenoise[dask]``): the same contract as
:func:`tvdenoise.workers.run_jobs`, with the images denoised by the cluster's workers.

Planning (output names, ``--skip-existing``, shards) and reporting stay in the client; each
image's :func:`~tvdenoise.batch.process_job` runs on a worker, which reads the input and
writes the output itself. The workers must therefore see the client's files at the same
absolute paths (a shared filesystem: NFS, Lustre, GPFS, or one machine), and have tvdenoise
installed (the same version) in their Python environment. Relative paths are made absolute
here before they are sent, and the results are labelled with the names the user gave.

dask and distributed are imported inside the functions, so ``import tvdenoise`` and the
command line work without them; a missing install is a :class:`~tvdenoise.errors.ClusterError`
that says which extra to install.
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from queue import SimpleQueue
from typing import TYPE_CHECKING, Any

from .batch import JobResult, StopFlag, describe_error, fault_injection, process_job
from .errors import ClusterError
from .planning import Job
from .progress import from_message, throttled, to_message

if TYPE_CHECKING:
    from distributed import Client

    from .settings import RunSettings

__all__ = ["CONNECT_TIMEOUT", "connect", "run_jobs_dask"]

#: Seconds to wait for the scheduler before giving up (distributed's own default is 30).
CONNECT_TIMEOUT = 10.0
#: How often a running image asks the scheduler whether the run was stopped, in seconds.
STOP_POLL_SECONDS = 0.5
#: How often the number of worker threads (which bounds the jobs in flight) is re-read.
CAPACITY_SECONDS = 2.0
#: The shortest time between two solve updates of an image sent to the client.
PROGRESS_SECONDS = 0.5

INSTALL_HINT = 'Dask support needs the dask extra: pip install "tvdenoise[dask]"'


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as error:
        raise ClusterError(f"{INSTALL_HINT} ({error})") from None
    return distributed


def connect(address: str, *, timeout: float | None = None) -> Client:
    """A ``distributed.Client`` connected to the scheduler at ``address``.

    Parameters
    ----------
    address : str
        The scheduler's address, e.g. ``"tcp://login1:8786"``.
    timeout : float, optional
        Seconds to wait for the scheduler (default :data:`CONNECT_TIMEOUT`).

    Raises
    ------
    ClusterError
        When distributed is not installed, the address is malformed, or the scheduler cannot
        be reached in time; the message names the address.
    """
    distributed = _import_distributed()
    from distributed.comm.addressing import parse_address, parse_host_port

    # A malformed address is refused here: a Client that fails on one hangs when collected.
    try:
        protocol, location = parse_address(address)
        if protocol in ("tcp", "tls", "ws", "wss"):
            parse_host_port(location)
    except ValueError as error:
        raise ClusterError(
            f"{address!r} is not a Dask scheduler address ({_first_line(error)}); "
            "expected e.g. tcp://host:8786"
        ) from None
    seconds = CONNECT_TIMEOUT if timeout is None else timeout
    try:
        return distributed.Client(address, timeout=seconds, set_as_default=False)
    except Exception as error:
        raise ClusterError(
            f"cannot connect to the Dask scheduler at {address} ({_first_line(error)})"
        ) from None


def _first_line(error: BaseException) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


class ClusterStop:
    """A stop flag shared through a named ``distributed.Event`` on the scheduler.

    Picklable (it travels by name); on a worker :meth:`is_set` asks the scheduler at most
    every :data:`STOP_POLL_SECONDS`, so checking it at each solver iteration costs nothing.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._set = False
        self._checked = float("-inf")

    def __getstate__(self) -> dict[str, Any]:
        return {"name": self.name}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.name, self._set, self._checked = state["name"], False, float("-inf")

    def _event(self, client: Any = None) -> Any:
        from distributed import Event

        return Event(self.name, client=client)

    def is_set(self) -> bool:
        now = time.monotonic()
        if not self._set and now - self._checked >= STOP_POLL_SECONDS:
            self._checked = now
            try:
                self._set = bool(self._event().is_set())
            except Exception:  # scheduler unreachable: keep working, the client decides
                return False
        return self._set

    def set(self, client: Any = None) -> None:
        self._set = True
        self._event(client).set()

    def clear(self, client: Any = None) -> None:
        """Forget the event on the scheduler (a long-lived scheduler keeps set events)."""
        self._event(client).clear()


def _run_on_worker(
    job: Job,
    settings: RunSettings,
    overwrite: bool,
    report: bool,
    stop: ClusterStop,
    topic: str | None = None,
) -> JobResult | None:
    """The task: one image, or None when the run was stopped before it started. With a
    ``topic``, its progress events go to the client as events of that topic (through the
    scheduler, solve updates at most every :data:`PROGRESS_SECONDS`)."""
    if stop.is_set():
        return None
    fault_injection(job)
    on_progress = None
    if topic is not None:
        from distributed import get_worker

        worker = get_worker()

        def send(event: Any) -> None:
            worker.log_event(topic, {"input": job.label, "event": to_message(event)})

        on_progress = throttled(send, PROGRESS_SECONDS)
    return process_job(
        job, settings, overwrite=overwrite, stop=stop, report=report, on_progress=on_progress
    )


def _absolute(job: Job) -> Job:
    def absolute(path: Path | None) -> Path | None:
        return None if path is None else path.absolute()

    return replace(
        job,
        source=absolute(job.source),
        target=absolute(job.target),
        reference=absolute(job.reference),
    )


def _relabel(result: JobResult, sent: Job, job: Job) -> JobResult:
    """Name the files in a worker's result as the user gave them, as a local run does."""
    names = {sent.label: job.label, sent.target_label: job.target_label}
    if sent.reference is not None and job.reference is not None:
        names[str(sent.reference)] = str(job.reference)
    # One pass, longest first: a target may contain its source's path (--name '{name}...').
    pattern = re.compile("|".join(re.escape(name) for name in sorted(names, key=len, reverse=True)))

    def rename(text: str | None) -> str | None:
        return None if text is None else pattern.sub(lambda match: names[match.group()], text)

    result = replace(result, input=job.label, output=job.target_label, error=rename(result.error))
    return result


def _failed(job: Job, error: BaseException | str) -> JobResult:
    message = error if isinstance(error, str) else describe_error(job.label, error)
    return JobResult(job.label, job.target_label, "failed", error=message)


def _killed_worker(future: Any) -> bool:
    """Whether a task failed because the workers that ran it or held its result died (Dask's
    KilledWorker, or a result lost with its worker)."""
    if future.status == "lost":
        return True
    if future.status != "error":
        return False
    with contextlib.suppress(Exception):
        return type(future.exception()).__name__ == "KilledWorker"
    return False


def _collect(future: Any, sent: Job, job: Job) -> JobResult | None:
    """The result of a finished future: the worker's, or a failed one naming the file."""
    status = future.status
    if status == "finished":
        try:
            value = future.result()
        except Exception as error:  # the result could not be fetched or unpickled
            return _failed(job, error)
        return None if value is None else _relabel(value, sent, job)
    if status == "error":
        # The task raised outside process_job: a worker lost too often (KilledWorker), a
        # pickling error, an environment without tvdenoise.
        exception = future.exception()
        if type(exception).__name__ == "KilledWorker":
            # Dask ran it on several workers and each died (its distributed.scheduler.
            # allowed-failures setting, 3 by default, says how many times it retries).
            return _failed(
                job, f"{job.label}: every worker that ran it died (out of memory?), twice over"
            )
        return _failed(job, exception)
    return _failed(
        job, f"{job.label}: the Dask cluster dropped the task ({status}; scheduler lost?)"
    )


def _worker_threads(client: Any) -> int:
    try:
        return sum(client.nthreads().values())
    except Exception:  # pragma: no cover - the scheduler went away; futures will say so
        return 0


def run_jobs_dask(
    jobs: list[Job],
    settings: RunSettings,
    *,
    address: str | Client,
    stop: StopFlag | None = None,
    on_start: Callable[[Job], object] | None = None,
    on_progress: Callable[[Job, Any], object] | None = None,
    report: bool = False,
) -> Iterator[JobResult]:
    """Run the jobs on a Dask cluster; yield each result as it finishes (in finishing order).

    The contract of :func:`tvdenoise.workers.run_jobs`: every job gives one result, a failure
    (a bad image, a lost worker, any exception of the task) is a "failed" result naming the
    file, never an exception. At most twice the cluster's worker threads are in flight, so
    once ``stop`` is set no new job is submitted, the images running stop at their next
    iteration check and are yielded as "interrupted" (nothing written), and the jobs never
    started are not yielded at all.

    Parameters
    ----------
    jobs : list of Job
        Planned jobs with files (stdin/stdout jobs cannot be sent to a cluster).
    settings : RunSettings
        As for :func:`~tvdenoise.batch.process_job` (they pickle); ``exec.device`` is resolved
        on each worker, ``exec.workers`` is not used (the cluster's threads run the jobs), and
        ``output.overwrite`` says whether existing outputs may be replaced.
    address : str or distributed.Client
        The scheduler's address (a client is opened and closed here) or a connected client.
    stop, on_start, on_progress, report
        As for :func:`~tvdenoise.workers.run_jobs`; ``on_start`` is called as a job is
        submitted. The workers send their progress events as events of a topic of this
        run (:meth:`distributed.Worker.log_event`), which reach ``on_progress`` in the
        thread that iterates over the results, a little behind the work.

    Raises
    ------
    ClusterError
        distributed is not installed, or the scheduler cannot be reached.
    InvalidParameterError
        A job reads stdin or writes stdout.
    """
    from .errors import InvalidParameterError

    for job in jobs:
        if job.source is None or job.target is None:
            raise InvalidParameterError(
                f"{job.label}: stdin and stdout cannot be used with a Dask cluster"
            )
    distributed = _import_distributed()
    overwrite = settings.output.overwrite
    if settings.read.mask not in (None, "nan"):  # a mask image, found as the jobs' files are
        settings = settings.replace(mask=str(Path(settings.read.mask).absolute()))
    client = connect(address) if isinstance(address, str) else address
    cluster_stop = ClusterStop(f"tvdenoise-stop-{uuid.uuid4().hex}")
    stop_sent = False
    queue = [(job, _absolute(job)) for job in reversed(jobs)]
    pending: dict[Any, tuple[Job, Job]] = {}
    finished = distributed.as_completed(loop=client.loop)
    capacity, capacity_time = 0, float("-inf")
    retried: set[int] = set()
    again: list[tuple[Job, Job]] = []
    existed: dict[int, bool] = {}
    topic = None
    received: SimpleQueue[Any] = SimpleQueue()  # filled in the client's event-loop thread
    if on_progress is not None:
        topic = f"tvdenoise-progress-{uuid.uuid4().hex}"
        client.subscribe_topic(topic, received.put)
    by_label = {sent.label: job for job, sent in queue}

    def hand_on_progress() -> None:
        while on_progress is not None and not received.empty():
            _, message = received.get()
            job = by_label.get(str(message.get("input"))) if isinstance(message, dict) else None
            if job is not None:
                on_progress(job, from_message(message["event"]))

    def submit(job: Job, sent: Job) -> None:
        if id(job) not in retried:
            if on_start is not None:
                on_start(job)
            existed[id(job)] = job.target is not None and job.target.exists()
        future = client.submit(
            _run_on_worker,
            sent,
            settings,
            # An output that did not exist when the job was sent may be replaced: Dask runs
            # a task again when the worker holding its result dies, after the task wrote the
            # file (and so does the one retry of a job whose workers died).
            overwrite or not existed[id(job)],
            report,
            cluster_stop,
            topic,
            key=f"tvdenoise-{uuid.uuid4().hex}",
            pure=False,
        )
        pending[future] = (job, sent)
        finished.add(future)

    try:
        while queue or pending or again:
            if stop is not None and stop.is_set() and not stop_sent:
                queue.clear()
                again.clear()
                cluster_stop.set(client)
                stop_sent = True
            now = time.monotonic()
            if queue and now - capacity_time >= CAPACITY_SECONDS:
                capacity, capacity_time = max(2, 2 * _worker_threads(client)), now
            # A job retried after its workers died runs alone, once the others in flight are
            # done: Dask charges every task a dying worker held, so only the culprit can be
            # charged for its own deaths then. New jobs wait meanwhile.
            if again and not pending:
                submit(*again.pop())
            while queue and not again and len(pending) < capacity:
                submit(*queue.pop())
            if not pending:
                break
            hand_on_progress()
            done = finished.next_batch(block=False)
            if not done:
                time.sleep(0.02)
                continue
            for future in done:
                job, sent = pending.pop(future)
                if _killed_worker(future) and id(job) not in retried:
                    retried.add(id(job))
                    again.insert(0, (job, sent))
                    continue
                result = _collect(future, sent, job)
                if result is not None:
                    yield result
    finally:
        for future in pending:
            future.cancel()
        if stop_sent:
            # The scheduler may be gone; then there is nothing to forget.
            with contextlib.suppress(Exception):
                cluster_stop.clear(client)
        if topic is not None:
            with contextlib.suppress(Exception):
                client.unsubscribe_topic(topic)
        if isinstance(address, str):
            client.close()
