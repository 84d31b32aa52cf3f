"""Running jobs: one image at a time in this process, or in parallel worker processes.

:func:`process_job` does one image from start to end (read, denoise, write) and returns a
picklable :class:`JobResult`; it never raises for a bad image, so one failure never stops a
batch. :func:`run_jobs` runs a list of jobs serially or in a pool of worker processes, each
started once (torch imported once per worker, not per image) with its share of the CPU cores,
and stops cleanly when asked: the image in progress is abandoned at its next iteration check
(nothing is written for it; writes are atomic), finished outputs stay, the rest is not
started.

Torch is imported only inside the functions that need it, so the command line's planning,
``--dry-run`` and ``--help`` stay fast.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from .errors import ImageWriteError, TVDenoiseError
from .planning import Job


def np_stack(arrays: list[Any]) -> Any:
    import numpy as np

    return np.stack(arrays)


__all__ = ["JobResult", "StopFlag", "process_job", "run_jobs", "usable_cores"]

#: Settings that are passed to :func:`tvdenoise.denoise`.
DENOISE_KEYS = ("weight", "beta", "tv", "color", "fidelity", "solver", "max_iter", "tol")


class StopFlag(Protocol):
    def is_set(self) -> bool: ...

    def set(self) -> None: ...


class Interrupted(Exception):
    """Raised inside a solve when a stop was requested."""


@dataclass
class JobResult:
    """What became of one job; everything a summary line, JSON line or report needs."""

    input: str
    output: str
    status: str  # "ok", "failed", "skipped" or "interrupted"
    error: str | None = None
    seconds: float = 0.0
    width: int | None = None
    height: int | None = None
    channels: int | None = None
    dtype: str | None = None
    device: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)
    #: The encoded image, for a job whose output is stdout.
    data: bytes | None = field(default=None, repr=False)
    #: The report record (tvdenoise.report.ImageRecord), when a report was asked for.
    report: Any = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (no image bytes)."""
        out = {
            key: value
            for key, value in vars(self).items()
            if key not in ("data", "settings", "record", "report")
        }
        out.update(self.settings)
        out.update(self.record)
        return out


def usable_cores() -> int:
    """CPU cores this process may run on (the affinity mask, which SLURM and taskset set)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def describe_error(label: str, error: BaseException, *also: str) -> str:
    """One line naming the file and the problem (``label`` is prefixed unless the message
    already starts with it or with one of ``also``, e.g. the output's name)."""
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    if not isinstance(error, TVDenoiseError):
        message = f"unexpected {type(error).__name__}: {message}"
    if not message.startswith((label, *also)):
        message = f"{label}: {message}"
    return message


def remove_stale_temps(jobs: list[Job]) -> int:
    """Delete temporary files that a killed earlier run left for these jobs' outputs.

    Only temporaries of this plan's own targets are touched (``.<target>.tvdenoise-*.tmp``),
    so another command writing other files into the same folder (another shard) is safe.
    Returns how many were removed.
    """
    from .image_io import TEMP_NAME_PATTERN

    removed = 0
    by_folder: dict[Path, set[str]] = {}
    for job in jobs:
        if job.target is not None:
            by_folder.setdefault(job.target.parent, set()).add(job.target.name)
    for folder, names in by_folder.items():
        try:
            candidates = list(folder.glob(".*.tvdenoise-*.tmp"))
        except OSError:
            continue
        for path in candidates:
            match = TEMP_NAME_PATTERN.match(path.name)
            if match and match.group("target") in names:
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed += 1
    return removed


def _make_parent(target: Path) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ImageWriteError(
            f"{target}: cannot create folder {target.parent} ({error.strerror or error})"
        ) from error


def process_job(
    job: Job,
    settings: dict[str, Any],
    *,
    overwrite: bool = False,
    stdin_data: bytes | None = None,
    stop: StopFlag | None = None,
    on_iteration: Callable[[Any], object] | None = None,
    report: bool = False,
) -> JobResult:
    """Read, denoise and write one image; report failures in the result, never raise.

    ``settings`` holds the denoising options (see DENOISE_KEYS) and ``device``. For a job
    whose output is stdout the encoded image is returned in ``result.data``. With ``report``
    the result carries an ImageRecord (with PSNR/SSIM against ``job.reference`` and pictures
    when ``job.pictures``), built here so a worker sends back only the small record.
    """
    from .denoising import resolve_device
    from .image_io import DEFAULT_MAX_PIXELS

    start = time.perf_counter()
    result = JobResult(job.label, job.target_label, "failed")
    image = None
    options = {key: settings[key] for key in DENOISE_KEYS if key in settings}
    if options.get("weight") == "auto" and settings.get("sigma") is not None:
        options["sigma"] = settings["sigma"]
    result.settings = dict(options)
    stack_mode = settings.get("stack", "off")
    max_pixels = settings.get("max_pixels", DEFAULT_MAX_PIXELS) or None
    try:
        if stop is not None and stop.is_set():
            raise Interrupted
        if job.target is not None and not overwrite and job.target.exists():
            raise ImageWriteError(f"{job.target}: exists (use --overwrite to replace it)")
        stack, image = _read(job, stdin_data, stack_mode, max_pixels)
        height, width = image.pixels.shape[:2]
        result.width, result.height = int(width), int(height)
        result.channels = 1 if image.pixels.ndim == 2 else int(image.pixels.shape[2])
        result.dtype = str(image.pixels.dtype)
        device = resolve_device(settings.get("device", "auto"))
        result.device = str(device)

        def callback(info: Any) -> None:
            if stop is not None and stop.is_set():
                raise Interrupted
            if on_iteration is not None:
                on_iteration(info)

        solve = functools.partial(_solve, options=options, device=device, callback=callback)
        if stack is None:
            pixels, record = solve(image.pixels)
            output: Any = replace(image, pixels=pixels)
        elif stack_mode == "volume":
            pixels, record = solve(stack.pixels, volume=True)
            output = replace(stack, pixels=pixels)
        else:
            pages = [solve(page) for page in stack.pixels]
            record = _combine([solve_record for _, solve_record in pages])
            output = replace(stack, pixels=np_stack([pixels for pixels, _ in pages]))
        result.record = {
            "solver_used": record.solver,
            "iterations": record.iterations,
            "energy": record.energy,
            "gap": record.gap,
            "relative_change": record.relative_change,
            "converged": record.converged,
            "stop_reason": record.stop_reason,
            "local_minimum": record.local_minimum,
            "solve_seconds": record.seconds,
        }
        choice = getattr(record, "weight_choice", None)
        if choice is not None:
            result.record.update(
                weight_used=choice.weight,
                weight_auto=True,
                sigma=choice.sigma,
                sigma_estimated=choice.sigma_estimated,
            )
        if stack is not None:
            result.record["pages"] = stack.pages
        if report:
            first = output if stack is None else output.page(0)
            result.report = _report_record(
                job, image, first, record, options, result.device, metrics=stack is None
            )
        _write(job, output, stack is not None, settings.get("quality"), overwrite, result)
        result.status = "ok"
    except Interrupted:
        result.status = "interrupted"
    except Exception as error:  # one bad file must not stop the batch
        result.error = describe_error(job.label, error, job.target_label)
    result.seconds = time.perf_counter() - start
    if report:
        from .report import failed_record

        if result.status == "ok":
            result.report.seconds = result.seconds
        else:
            reason = result.error or "interrupted: stopped by a signal, nothing written"
            result.report = failed_record(
                job.label, job.target_label, reason, image=image, seconds=result.seconds
            )
    return result


def _read(job: Job, data: bytes | None, stack_mode: str, max_pixels: int | None) -> Any:
    """(stack or None, first image) of a job's input."""
    from .image_io import decode_image, decode_stack, load_image, load_stack

    if stack_mode == "off":
        if job.source is None:
            return None, decode_image(data or b"", "<stdin>", max_pixels=max_pixels)
        return None, load_image(job.source, max_pixels=max_pixels)
    if job.source is None:
        stack = decode_stack(data or b"", "<stdin>", max_pixels=max_pixels)
    else:
        stack = load_stack(job.source, max_pixels=max_pixels)
    return stack, stack.page(0)


def _solve(
    pixels: Any, *, options: dict[str, Any], device: Any, callback: Any, volume: bool = False
) -> Any:
    """Denoise pixels of any dtype on the unit scale the weight is defined on; return pixels
    of the same dtype (floats outside [0, 1] keep their own range) and the solve record."""
    from .denoising import denoise
    from .image_io import from_unit_range, to_unit_range

    values, span = to_unit_range(pixels)
    if volume:
        import numpy as np
        import torch

        # (D, H, W[, C]) pages -> one (1, C, D, H, W) volume, denoised with 3-D TV.
        pages = values if values.ndim == 4 else values[..., None]
        volume_tensor = torch.from_numpy(np.ascontiguousarray(pages.transpose(3, 0, 1, 2)))
        result, record = denoise(
            volume_tensor[None], **options, device=device, callback=callback, return_record=True
        )
        denoised = result[0].permute(1, 2, 3, 0).cpu().numpy()
        denoised = denoised if values.ndim == 4 else denoised[..., 0]
    else:
        denoised, record = denoise(
            values, **options, device=device, callback=callback, return_record=True
        )
    return from_unit_range(denoised, span, pixels.dtype), record


def _combine(records: list[Any]) -> Any:
    """One record for the pages of a stack denoised one by one."""
    gaps = [r.gap for r in records]
    changes = [r.relative_change for r in records]
    unconverged = [r.stop_reason for r in records if not r.converged]
    return replace(
        records[0],
        iterations=sum(r.iterations for r in records),
        energy=sum(r.energy for r in records),
        gap=None if None in gaps else max(gaps),
        relative_change=None if None in changes else max(changes),
        converged=all(r.converged for r in records),
        seconds=sum(r.seconds for r in records),
        stop_reason=unconverged[0] if unconverged else records[0].stop_reason,
        local_minimum=any(r.local_minimum for r in records),
        history=[],
    )


def _write(
    job: Job, output: Any, is_stack: bool, quality: int | None, overwrite: bool, result: Any
) -> None:
    from .image_io import encode_image, encode_stack, save_image, save_stack

    if job.target is None:
        encode = encode_stack if is_stack else encode_image
        result.data = encode(output, job.format or output.format, quality=quality, name="<stdout>")
        return
    _make_parent(job.target)
    save = save_stack if is_stack else save_image
    save(job.target, output, format=job.format, overwrite=overwrite, quality=quality)


def _report_record(
    job: Job,
    image: Any,
    output: Any,
    solve: Any,
    options: dict[str, Any],
    device: Any,
    *,
    metrics: bool = True,
) -> Any:
    """The report's record of a denoised image: metrics against the reference, pictures."""
    from .image_io import load_image, to_float
    from .report import image_record, make_pictures, reference_metrics

    noisy, denoised = to_float(image.pixels), to_float(output.pixels)
    scores = None
    if job.reference is not None and metrics:
        reference = load_image(job.reference)
        try:
            scores = reference_metrics(noisy, denoised, to_float(reference.pixels))
        except TVDenoiseError as error:
            raise TVDenoiseError(f"{job.label}: reference {job.reference}: {error}") from None
    choice = getattr(solve, "weight_choice", None)
    record = image_record(
        job.label,
        job.target_label,
        image,
        solve,
        {**options, "device": device},
        metrics=scores,
        weight=None if choice is None else choice.weight,
        weight_auto=choice is not None,
        sigma=None if choice is None else choice.sigma,
    )
    if job.pictures:
        record.pictures = make_pictures(noisy, denoised)
    return record


# ------------------------------------------------------------------------------------------
# Worker processes
# ------------------------------------------------------------------------------------------

_worker_stop: StopFlag | None = None


def _init_worker(threads: int, stop: StopFlag) -> None:
    """Run once per worker process: its share of the cores, and the stop signals."""
    import signal

    global _worker_stop
    _worker_stop = stop
    # Ctrl-C reaches the whole process group: the parent decides, workers ignore it. A
    # SIGTERM sent to the group (a scheduler's time limit) stops the worker's current image.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    import torch

    torch.set_num_threads(threads)


def _worker_job(job: Job, settings: dict[str, Any], overwrite: bool, report: bool) -> JobResult:
    return process_job(job, settings, overwrite=overwrite, stop=_worker_stop, report=report)


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
    settings: dict[str, Any],
    *,
    workers: int = 1,
    overwrite: bool = False,
    stop: StopFlag | None = None,
    stdin_data: bytes | None = None,
    on_start: Callable[[Job], object] | None = None,
    on_iteration: Callable[[Any], object] | None = None,
    report: bool = False,
) -> Iterator[JobResult]:
    """Run the jobs; yield each result as it finishes (in finishing order).

    With ``workers > 1`` the jobs run in that many worker processes, each with
    ``usable_cores() // workers`` torch threads. Once ``stop`` is set, no new job starts, the
    ones running stop at their next iteration check and are yielded as "interrupted", and the
    jobs never started are not yielded at all.
    """
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            if stop is not None and stop.is_set():
                return
            if on_start is not None:
                on_start(job)
            yield process_job(
                job,
                settings,
                overwrite=overwrite,
                stdin_data=stdin_data if job.source is None else None,
                stop=stop,
                on_iteration=on_iteration,
                report=report,
            )
        return

    context = _pool_context()
    worker_stop = context.Event()
    threads = max(1, usable_cores() // workers)
    executor = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_init_worker,
        initargs=(threads, worker_stop),
    )
    pending: dict[Future[JobResult], Job] = {}
    queue = list(reversed(jobs))
    try:
        # Keep each worker fed with one job in hand, not the whole list: a stop then has only
        # the running images to wait for, and results stream back in order of completion.
        while queue or pending:
            stopping = stop is not None and stop.is_set()
            if stopping:
                worker_stop.set()
                queue.clear()
                for future in [f for f in pending if f.cancel()]:
                    del pending[future]
            while queue and len(pending) < 2 * workers:
                job = queue.pop()
                if on_start is not None:
                    on_start(job)
                pending[executor.submit(_worker_job, job, settings, overwrite, report)] = job
            if not pending:
                break
            done, _ = wait(list(pending), timeout=0.1, return_when=FIRST_COMPLETED)
            for future in done:
                job = pending.pop(future)
                try:
                    yield future.result()
                except Exception as error:  # a worker died (killed, out of memory)
                    failed = JobResult(
                        job.label,
                        job.target_label,
                        "failed",
                        error=describe_error(job.label, error),
                    )
                    if report:
                        from .report import failed_record

                        failed.report = failed_record(
                            job.label, job.target_label, failed.error or "failed"
                        )
                    yield failed
    finally:
        if stop is not None and stop.is_set():
            worker_stop.set()
        with contextlib.suppress(Exception):
            executor.shutdown(wait=True, cancel_futures=True)
