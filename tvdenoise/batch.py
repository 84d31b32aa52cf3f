"""One job from start to end: read, denoise, write.

:func:`process_job` does one image (or stack) and returns a picklable :class:`JobResult`; it
never raises for a bad image, so one failure never stops a batch. :func:`_solve_batches`
denoises same-size images of a chunk as one (N, C, H, W) batch. Running a list of jobs,
serially or in worker processes, is :mod:`tvdenoise.workers`' job (and on a Dask cluster
:mod:`tvdenoise.distributed`'s).

Torch is imported only inside the functions that need it, so the command line's planning,
``--dry-run`` and ``--help`` stay fast.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .errors import ImageWriteError, TVDenoiseError
from .io import claims
from .native import usable_cores
from .planning import Job
from .progress import READING, SOLVING, WRITING, SolveMeter, Stage
from .solving import mask_file, output_step, solve_pixels, tile_size

if TYPE_CHECKING:
    from .settings import ReadSettings, RunSettings


def np_stack(arrays: list[Any]) -> Any:
    import numpy as np

    return np.stack(arrays)


__all__ = ["JobResult", "StopFlag", "process_job", "tile_size", "usable_cores"]


class StopFlag(Protocol):
    def is_set(self) -> bool: ...

    def set(self) -> None: ...


class Interrupted(Exception):
    """Raised inside a solve when a stop was requested."""


@dataclass
class JobResult:
    """What became of one image: the one record that its summary line, its ``--json`` line
    (:meth:`as_dict`) and its report record (:meth:`report_record`) are all made from, so a
    key means the same in each.

    ``settings`` holds the options asked for, ``record`` what the solve did: ``weight`` and
    ``solver`` in :meth:`as_dict` are what ran (the weight an automatic search chose, the
    solver ``auto`` picked), set only once an image was solved; what was asked is the run's
    settings. ``output`` is what was written: None in :meth:`as_dict` for a failed or
    interrupted image. ``metrics``, ``history`` and ``pictures`` are filled only when a
    report was asked for (reference metrics also appear in the ``--json`` line).
    """

    input: str
    output: str
    status: str  # "ok", "failed", "skipped" or "interrupted"
    error: str | None = None
    seconds: float = 0.0
    width: int | None = None
    height: int | None = None
    channels: int | None = None
    dtype: str | None = None
    bit_depth: int | None = None
    alpha: bool | None = None
    device: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)
    #: PSNR and SSIM against the job's reference image (psnr_in, psnr_out, ssim_in, ssim_out).
    metrics: dict[str, float] | None = None
    #: ``(iteration, energy, gap)`` at every evaluated iteration (for a report).
    history: list[tuple[int, float, float | None]] = field(default_factory=list, repr=False)
    #: Thumbnails for an HTML report (tvdenoise.report.ImagePictures).
    pictures: Any = field(default=None, repr=False)
    #: The encoded image, for a job whose output is stdout.
    data: bytes | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` line of the image (without its ``"type"``): JSON-ready values."""
        out = {key: value for key, value in vars(self).items() if key not in _NOT_IN_LINE}
        if self.status in ("failed", "interrupted"):
            out["output"] = None  # nothing was written for it
        out.update({key: value for key, value in self.settings.items() if key not in _RAN})
        out.update(self.record)
        out.update(self.metrics or {})
        return out

    def report_record(self) -> Any:
        """The image's record in a report (a :class:`tvdenoise.report.ImageRecord`), made
        from :meth:`as_dict`: the keys the two share mean the same."""
        from .report.records import record_from_line

        return record_from_line(self.as_dict(), history=self.history, pictures=self.pictures)


#: Keys of :meth:`JobResult.as_dict` that say what ran, from the solve record alone.
_RAN = ("weight", "solver")
_NOT_IN_LINE = ("data", "settings", "record", "metrics", "history", "pictures")


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
    """Delete temporary files and claims that a killed earlier run left for these jobs' outputs.

    Only temporaries of this plan's own targets are touched (``.<target>.tvdenoise-*.tmp``),
    so another command writing other files into the same folder (another shard) is safe;
    folders and files that cannot be read or removed are skipped
    (:func:`tvdenoise.io.atomic.clean_stale_temps` does the work). Claims
    (``.<target>.tvdenoise-claim``) are removed only where their holder is gone
    (:func:`tvdenoise.io.claims.remove_stale`): a run killed after writing an output and
    before releasing its claim leaves one beside it. Returns how many files were removed.
    """
    from .io.atomic import clean_stale_temps

    by_folder: dict[Path, set[str]] = {}
    for job in jobs:
        if job.target is not None:
            by_folder.setdefault(job.target.parent, set()).add(job.target.name)
    removed = 0
    for folder, names in by_folder.items():
        removed += len(clean_stale_temps(folder, targets=names, strict=False))
        try:
            entries = [entry.name for entry in os.scandir(folder)]
        except OSError:
            continue
        for entry in entries:
            target = entry[1 : -len(claims.SUFFIX)] if entry.endswith(claims.SUFFIX) else None
            if entry.startswith(".") and target in names:
                removed += claims.remove_stale(folder / target)
    return removed


def _make_parent(target: Path) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ImageWriteError(
            f"{target}: cannot create folder {target.parent} ({error.strerror or error})"
        ) from error


class _Skipped(Exception):
    """The image is (being) written by another run sharing the folder (--skip-existing)."""


class _Watch:
    """The solver callback and the stage hook of one job. Each checks the stop flag (also
    during the weight search, between its trials) and renews the job's claim, then hands
    ``on_progress`` a progress event (:mod:`tvdenoise.progress`): the stage, with ``part``
    (``"page 2 of 5"``) added to its detail, or the solve's :class:`SolveProgress`."""

    def __init__(
        self, stop: StopFlag | None, on_progress: Callable[[Any], object] | None, max_iter: int
    ) -> None:
        self.stop, self.on_progress = stop, on_progress
        self.meter = SolveMeter(max_iter)
        self.claim: claims.Claim | None = None
        self.part = ""

    def _check(self) -> None:
        if self.stop is not None and self.stop.is_set():
            raise Interrupted
        claims.renew(self.claim)

    def tell(self, event: Any) -> None:
        """Pass an event on (reading and writing, from the job itself)."""
        if self.on_progress is not None:
            self.on_progress(event)

    def stage(self, stage: Stage) -> None:
        self._check()
        if stage.name == SOLVING:
            self.meter.restart()
        if self.part:
            stage = Stage(stage.name, ", ".join(filter(None, (stage.detail, self.part))))
        self.tell(stage)

    def iteration(self, info: Any) -> None:
        self._check()
        if self.on_progress is not None:
            self.on_progress(self.meter(info))


def process_job(
    job: Job,
    settings: RunSettings,
    *,
    overwrite: bool = False,
    stdin_data: bytes | None = None,
    stop: StopFlag | None = None,
    on_progress: Callable[[Any], object] | None = None,
    report: bool = False,
    solved: tuple[Any, Any, Any] | None = None,
) -> JobResult:
    """Read, denoise and write one image; report failures in the result, never raise.

    ``overwrite`` says whether this attempt may replace an existing output (the runners
    decide it from ``settings.output.overwrite`` and their retries). For a job whose output
    is stdout the encoded image is returned in ``result.data``. With ``report``
    the result carries an ImageRecord (with PSNR/SSIM against ``job.reference`` and pictures
    when ``job.pictures``), built here so a worker sends back only the small record.
    ``solved`` is ``(image, denoised pixels, record)`` of a 2-D image already read and
    denoised in a batch (:func:`_solve_batches`): only the writing and reporting are left.
    ``on_progress`` is handed the job's progress events (:mod:`tvdenoise.progress`): each
    :class:`~tvdenoise.progress.Stage` as it begins (reading, estimating noise, choosing the
    weight, solving, writing) and the solve's :class:`~tvdenoise.progress.SolveProgress`
    at each evaluated iteration (for a clip, :class:`~tvdenoise.progress.FrameProgress`).
    """
    from .denoising import resolve_device

    if solved is None and (clip_format := _streamed_clip(job)) is not None:
        return process_clip(
            job, clip_format, settings, overwrite=overwrite, stop=stop, on_progress=on_progress
        )
    start = time.perf_counter()
    result = JobResult(job.label, job.target_label, "failed")
    image = None
    options = settings.solve.denoise_options()
    result.settings = dict(options)
    stack_mode = settings.read.stack
    max_pixels = settings.read.pixel_limit
    # Under --skip-existing, overlapping runs over one folder share the work: an output that
    # exists or is claimed by another live run is skipped, not failed (tvdenoise.io.claims).
    sharing = settings.output.skip_existing and not overwrite and job.target is not None
    claim = None
    watch = _Watch(stop, on_progress, settings.solve.max_iter)
    try:
        if stop is not None and stop.is_set():
            raise Interrupted
        claim = watch.claim = _claim_target(job, overwrite=overwrite, sharing=sharing)
        if solved is None:
            watch.tell(Stage(READING))
            stack, image = _read(
                job, stdin_data, stack_mode, max_pixels, allow_nan=settings.read.mask is not None
            )
        else:
            stack, image = None, solved[0]
        read_seconds = time.perf_counter() - start
        height, width = image.pixels.shape[:2]
        result.width, result.height = int(width), int(height)
        result.channels = 1 if image.pixels.ndim == 2 else int(image.pixels.shape[2])
        result.dtype = str(image.pixels.dtype)
        result.bit_depth = 1 if image.pixels.dtype.kind == "b" else 8 * image.pixels.dtype.itemsize
        result.alpha = image.alpha is not None
        device = resolve_device(settings.exec.device)
        result.device = str(device)
        solve = functools.partial(
            solve_pixels,
            options={**options, "on_stage": watch.stage},
            device=device,
            callback=watch.iteration,
            settings=settings,
        )
        if solved is not None:
            _, pixels, record = solved
            output: Any = replace(image, pixels=pixels)
        elif stack is None:
            pixels, record = solve(image.pixels)
            output = replace(image, pixels=pixels)
        elif stack_mode == "volume":
            pixels, record = solve(stack.pixels, volume=True)
            output = replace(stack, pixels=pixels)
        else:
            from .solvers.base import combine_records

            pages = []
            for number, page in enumerate(stack.pixels, 1):
                watch.part = f"page {number} of {len(stack.pixels)}"
                pages.append(solve(page))
            record = combine_records([solve_record for _, solve_record in pages])
            output = replace(stack, pixels=np_stack([pixels for pixels, _ in pages]))
        choice = getattr(record, "weight_choice", None)
        result.record = {
            "weight": settings.solve.weight if choice is None else choice.weight,
            "weight_auto": choice is not None,
            "solver": record.solver,
            "iterations": record.iterations,
            "energy": record.energy,
            "gap": record.gap,
            "relative_change": record.relative_change,
            "converged": record.converged,
            "stop_reason": record.stop_reason,
            "local_minimum": record.local_minimum,
            "solve_seconds": record.seconds,
            "coarse_work": record.coarse_work,
            "read_seconds": read_seconds,
        }
        if choice is not None:
            result.record.update(
                sigma=choice.sigma,
                sigma_estimated=choice.sigma_estimated,
                sigma_seconds=choice.sigma_seconds,
                weight_seconds=choice.seconds,
                weight_at_edge=_at_edge(choice),
            )
        # What was done, for formats that keep a history (FITS's HISTORY cards).
        used = None if choice is None else choice.weight
        output.metadata = {**output.metadata, "history": [_history(options, settings.read, used)]}
        if settings.output.compression != "keep":  # else a TIFF input's own, read with it
            output.metadata["tiff_compression"] = settings.output.compression
        if stack is not None:
            result.record["pages"] = stack.pages
        elif stack_mode == "off" and (tile := tile_size(image.pixels.shape, settings)):
            result.record["tile"] = tile
        if report:
            first = output if stack is None else output.page(0)
            result.metrics, result.pictures = _report_extras(job, image, first, stack is None)
            result.history = [(h.iteration, h.energy, h.gap) for h in record.history]
        written = time.perf_counter()
        watch.tell(Stage(WRITING))
        try:
            _write(job, output, stack is not None, settings.output.quality, overwrite, result)
        except ImageWriteError:
            if sharing and job.target is not None and job.target.exists():
                raise _Skipped(f"{job.target}: written by another run") from None
            raise
        result.record["write_seconds"] = time.perf_counter() - written
        result.status = "ok"
    except Interrupted:
        result.status = "interrupted"
    except _Skipped as skipped:
        result.status = "skipped"
        result.error = str(skipped)
    except Exception as error:  # one bad file must not stop the batch
        result.error = describe_error(job.label, error, job.target_label)
    finally:
        claims.release(claim)
    result.seconds = time.perf_counter() - start
    return result


def _claim_target(job: Job, *, overwrite: bool, sharing: bool) -> claims.Claim | None:
    """Check that ``job``'s output may be written and, when runs share the folder
    (``sharing``: --skip-existing), claim it; return the claim (None when not sharing).

    Raises _Skipped for an output that another run wrote or holds, ImageWriteError for one
    that exists without --overwrite.
    """
    if job.target is not None and not overwrite and job.target.exists():
        if sharing:
            claims.remove_stale(job.target)  # a killed run's, left beside its output
            raise _Skipped(f"{job.target}: written by another run")
        raise ImageWriteError(f"{job.target}: exists (use --overwrite to replace it)")
    if not sharing:
        return None
    assert job.target is not None
    try:
        claim = claims.take(job.target)
    except claims.ClaimedElsewhere as held:
        raise _Skipped(f"{job.target}: {held.holder}") from None
    if job.target.exists():  # written between the check above and the claim
        claims.release(claim)
        raise _Skipped(f"{job.target}: written by another run")
    return claim


def _at_edge(choice: Any) -> bool:
    """Whether the automatic weight is the smallest or largest the search tried (the best
    may lie beyond)."""
    if not choice.trials:
        return False
    tried = [weight for weight, _ in choice.trials]
    return choice.weight in (min(tried), max(tried))


def _history(options: dict[str, Any], read: ReadSettings, weight: float | None) -> str:
    """One line saying what was done: ``tvdenoise 1.2: total-variation denoised (weight 0.1,
    ...)``; ``weight`` is the automatic weight chosen, if any."""
    from ._version import __version__

    values = {**options, **({"weight": weight} if weight is not None else {})}
    parts = [
        f"{key} {values[key]:.4g}" if isinstance(values[key], float) else f"{key} {values[key]}"
        for key in ("weight", "fidelity", "tv", "beta")
        if key in values
    ]
    if read.stack == "volume":
        parts.append("3-D TV over the planes")
    if read.mask:
        parts.append(f"mask {read.mask}")
    return f"tvdenoise {__version__}: total-variation denoised ({', '.join(parts)})"


def _streamed_clip(job: Job) -> str | None:
    """The video format a job streams to, when its input and output are both clips: a file,
    or stdin spooled to one (``job.spooled``), to a file or stdout (else the clip is read
    whole, as any stack: to convert it to images)."""
    from .io import formats
    from .io.video import is_video

    if job.input_path is None:
        return None
    try:
        with open(job.input_path, "rb") as stream:
            source = formats.sniff(stream.read(64))
    except OSError:
        return None  # reported by the image path
    if job.format:
        target = formats.by_option(job.format)
    elif job.target is None:
        target = source  # stdout: the input's own format
    else:
        target = formats.by_extension(job.target.suffix)
    if source is None or target is None or not (is_video(source.name) and is_video(target.name)):
        return None
    return target.name


def process_clip(
    job: Job,
    clip_format: str,
    settings: RunSettings,
    *,
    overwrite: bool = False,
    stop: StopFlag | None = None,
    on_progress: Callable[[Any], object] | None = None,
) -> JobResult:
    """Denoise a video clip as it streams (:func:`tvdenoise.streaming.denoise_clip`): frame by
    frame, or with ``--stack volume`` in overlapping chunks of frames; the output keeps the
    frame count, size and rate, and the audio (:class:`tvdenoise.io.video.VideoWriter`).
    Progress goes to ``on_progress`` as :class:`tvdenoise.progress.FrameProgress`. Under
    --skip-existing the output is claimed as :func:`process_job` claims an image's; the
    space-time chunks fit ``settings.tiles.max_memory`` (:func:`tvdenoise.streaming.chunk_for`).
    A clip from stdin streams from its spooled copy (``job.spooled``); one for stdout is
    encoded in a temporary folder and returned in ``result.data``."""
    import tempfile

    from .denoising import resolve_device
    from .io import formats
    from .io.video import VideoReader, VideoWriter
    from .streaming import chunk_for, denoise_clip

    start = time.perf_counter()
    result = JobResult(job.label, job.target_label, "failed")
    options = settings.solve.denoise_options()
    result.settings = dict(options)
    source = job.input_path
    assert source is not None
    sharing = settings.output.skip_existing and not overwrite and job.target is not None
    claim = None
    scratch = None  # for stdout: the folder the clip is encoded in before it is sent
    try:
        if stop is not None and stop.is_set():
            raise Interrupted
        claim = _claim_target(job, overwrite=overwrite, sharing=sharing)
        target = job.target
        if target is None:
            scratch = tempfile.TemporaryDirectory(prefix="tvdenoise-stdout-")
            extension = formats.by_name(clip_format).extensions[0]
            target = Path(scratch.name) / f"stdout{extension}"
        device = resolve_device(settings.exec.device)
        result.device = str(device)

        def callback(info: Any) -> None:
            if stop is not None and stop.is_set():
                raise Interrupted
            claims.renew(claim)

        if on_progress is not None:
            volume = settings.read.stack == "volume"
            on_progress(Stage(SOLVING, "in chunks of frames" if volume else "frame by frame"))
        with VideoReader(source, job.label, settings.read.pixel_limit) as reader:
            info = reader.info
            result.width, result.height, result.channels = info.width, info.height, 3
            result.dtype = "uint8"
            _make_parent(target)
            with VideoWriter(
                target,
                clip_format,
                info.fps,
                quality=settings.output.quality,
                overwrite=overwrite,
                audio_from=source if info.audio else None,
                name=job.target_label,
                time_base=reader.time_base,
            ) as writer:
                chunk, overlap = chunk_for(
                    info.height,
                    info.width,
                    3,
                    settings.tiles.budget,
                )
                tile = _clip_tile(info.height, info.width, chunk, settings)
                # A --mask image applies to every frame (8-bit video has no NaN to mask).
                mask = settings.read.mask
                if mask not in (None, "nan"):
                    options["mask"] = mask_file(str(mask), (info.height, info.width))
                record = denoise_clip(
                    reader,
                    # Frames come out in order: each is shown at its input frame's time.
                    lambda frame: writer.write(frame, reader.timestamps.popleft()),
                    volume=settings.read.stack == "volume",
                    chunk=chunk,
                    overlap=overlap,
                    tile=tile,
                    tile_overlap=settings.tiles.tile_overlap,
                    total=info.frames,
                    on_progress=on_progress,
                    **options,
                    device=device,
                    callback=callback,
                )
                writer.finish()
        if scratch is not None:  # the encoded clip (compressed: far smaller than its frames)
            result.data = target.read_bytes()
        choice = getattr(record, "weight_choice", None)
        # "weight" and "solver" are what ran, as for an image (JobResult.as_dict).
        result.record = {
            "weight": settings.solve.weight if choice is None else choice.weight,
            "weight_auto": choice is not None,
            "solver": record.solver,
            "iterations": record.iterations,
            "energy": record.energy,
            "gap": record.gap,
            "converged": record.converged,
            "stop_reason": record.stop_reason,
            "frames": writer.frames,
            "fps": float(info.fps),
            "audio": info.audio and writer.audio_dropped is None,
        }
        if tile is not None:
            result.record["tile"] = tile
        if writer.audio_dropped is not None:
            result.record["audio_dropped"] = writer.audio_dropped
        if choice is not None:
            result.record.update(
                sigma=choice.sigma,
                sigma_estimated=choice.sigma_estimated,
                weight_at_edge=_at_edge(choice),
            )
        result.status = "ok"
    except Interrupted:
        result.status = "interrupted"
    except _Skipped as skipped:
        result.status = "skipped"
        result.error = str(skipped)
    except Exception as error:  # one bad clip must not stop the batch
        result.error = describe_error(job.label, error, job.target_label)
    finally:
        claims.release(claim)
        if scratch is not None:
            scratch.cleanup()
    result.seconds = time.perf_counter() - start
    return result


def _clip_tile(height: int, width: int, chunk: int, settings: RunSettings) -> int | None:
    """The tile side for a clip's frames (frame by frame: as for an image of their size) or
    its space-time chunks of ``chunk`` frames (--stack volume), or None to solve them whole:
    ``--tile`` when set, else what keeps a solve within ``--max-memory``."""
    from .streaming import space_time_tile

    tiles = settings.tiles
    if settings.read.stack != "volume" or tiles.tile > 0:
        return tile_size((height, width, 3), settings)
    return space_time_tile(height, width, 3, chunk, tiles.budget, tiles.tile_overlap)


def _read(
    job: Job,
    data: bytes | None,
    stack_mode: str,
    max_pixels: int | None,
    *,
    allow_nan: bool = False,
) -> Any:
    """(stack or None, first image) of a job's input; NaN is read (to be masked) when
    ``allow_nan`` (a --mask) and in FITS files."""
    from .image_io import decode_image, decode_stack, load_image, load_stack

    limits: dict[str, Any] = {"max_pixels": max_pixels, "allow_nan": allow_nan}
    if job.source is None and job.spooled is not None:  # a clip from stdin, to images
        data = job.spooled.read_bytes()
    if stack_mode == "off":
        if job.source is None:
            return None, decode_image(data or b"", "<stdin>", **limits)
        return None, load_image(job.source, **limits)
    if job.source is None:
        stack = decode_stack(data or b"", "<stdin>", **limits)
    else:
        stack = load_stack(job.source, **limits)
    return stack, stack.page(0)


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


def _report_extras(job: Job, image: Any, output: Any, metrics: bool) -> tuple[Any, Any]:
    """What a report adds for a denoised image: ``(metrics against job.reference or None,
    pictures or None)``."""
    from .image_io import load_image, to_float
    from .report import make_pictures, reference_metrics

    noisy, denoised = to_float(image.pixels), to_float(output.pixels)
    scores = None
    if job.reference is not None and metrics:
        reference = load_image(job.reference)
        try:
            scores = reference_metrics(noisy, denoised, to_float(reference.pixels))
        except TVDenoiseError as error:
            raise TVDenoiseError(f"{job.label}: reference {job.reference}: {error}") from None
    return scores, make_pictures(noisy, denoised) if job.pictures else None


# ------------------------------------------------------------------------------------------
# Same-size images solved together
# ------------------------------------------------------------------------------------------


def _solve_batches(
    jobs: list[Job],
    settings: RunSettings,
    stop: StopFlag | None,
    on_progress: Callable[[Job, Any], object] | None,
) -> dict[int, tuple[Any, Any, Any]]:
    """Read ``jobs`` and denoise those of equal shape and dtype as one (N, C, H, W) batch.

    Returns ``{index: (image, denoised pixels, batch record)}`` for the jobs solved in a batch
    of two or more; the others (unreadable, alone of their size, tiled, with NaN pixels, clips
    that stream, or in a batch that failed) are left to :func:`process_job`, which reports
    their errors. Each image keeps its own value span; all share the batch's solver record
    (the batch stops when every image has reached the tolerance). ``on_progress(job, event)``
    is handed each job's reading, and the progress of the batch its image is solved in.
    """
    import numpy as np
    import torch

    from .denoising import denoise, resolve_device
    from .image_io import from_unit_range, to_unit_range

    max_pixels = settings.read.pixel_limit
    groups: dict[tuple[Any, ...], list[tuple[int, Any]]] = {}
    for index, job in enumerate(jobs):
        if job.source is None or _streamed_clip(job) is not None:
            continue  # stdin is read once, by process_job; a clip streams frame by frame
        if on_progress is not None:
            on_progress(job, Stage(READING))
        try:
            _, image = _read(job, None, "off", max_pixels)
        except Exception:  # reported by process_job when it reads the file again
            continue
        if image.pixels.dtype.kind == "f" and np.isnan(image.pixels).any():
            continue  # NaN pixels (FITS) are masked out of the data term: solved alone
        if tile_size(image.pixels.shape, settings) is None:
            groups.setdefault((image.pixels.shape, image.pixels.dtype.str), []).append(
                (index, image)
            )

    options = settings.solve.denoise_options()
    device = resolve_device(settings.exec.device)
    solved: dict[int, tuple[Any, Any, Any]] = {}
    for members in groups.values():
        if len(members) < 2:
            continue
        watch = _Watch(stop, None, settings.solve.max_iter)
        if on_progress is not None:
            batch_jobs = [jobs[index] for index, _ in members]

            def each(event: Any, batch_jobs: list[Job] = batch_jobs) -> None:
                for job in batch_jobs:
                    on_progress(job, event)

            watch.on_progress, watch.part = each, f"batch of {len(members)}"
        scaled = [to_unit_range(image.pixels) for _, image in members]
        values = np.stack([value if value.ndim == 3 else value[..., None] for value, _ in scaled])
        batch = torch.from_numpy(np.ascontiguousarray(values.transpose(0, 3, 1, 2)))
        try:
            denoised, record = denoise(
                batch,
                **options,
                precision=output_step(members[0][1].pixels.dtype),
                device=device,
                callback=watch.iteration,
                on_stage=watch.stage,
                return_record=True,
            )
        except Interrupted:
            raise
        except Exception:  # for example out of device memory: fall back to one by one
            continue
        arrays = denoised.permute(0, 2, 3, 1).cpu().numpy()
        for (index, image), (_, span), array in zip(members, scaled, arrays, strict=True):
            array = array if image.pixels.ndim == 3 else array[..., 0]
            solved[index] = (image, from_unit_range(array, span, image.pixels.dtype), record)
    return solved


def fault_injection(job: Job) -> None:
    """For the test suite: a worker handed the image named by $TVDENOISE_FAULT_KILL_WORKER
    dies at once, as under the out-of-memory killer (SIGKILL). Nothing happens otherwise."""
    named = os.environ.get("TVDENOISE_FAULT_KILL_WORKER")
    if named and os.path.abspath(named) == os.path.abspath(job.label):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
