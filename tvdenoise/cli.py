"""The ``tvdenoise`` command: argument handling and terminal output, nothing else.

Heavy modules (torch, numpy, Pillow) are imported inside the command, so ``--help`` and
``--version`` return at once. Settings come from the built-in defaults, ``--preset``,
``--config`` and the command line, in that order of precedence (see :mod:`tvdenoise.config`);
:mod:`tvdenoise.planning` turns the inputs into jobs and :mod:`tvdenoise.batch` runs them.

Output channels: images (``-o -``), ``--json`` lines, ``--dry-run`` plans and
``--show-config`` go to stdout and nothing else does; progress, summaries and errors go to
stderr. Exit codes: 0 all done, 1 some images failed, 2 usage or config error, 130/143
interrupted by SIGINT/SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from . import cli_options as opts
from . import config
from ._version import __version__
from .errors import ClusterError, ConfigError, InvalidParameterError, TVDenoiseError
from .settings import RunSettings

# OpenMP threads that spin at barriers waiting for work slow every parallel step several times
# on a machine that is also running other things (measured in benchmarks/RESULTS.md); a
# command-line tool shares its machine, so wait passively unless the user chose otherwise.
# Set before torch is imported (here, by the workers' fork server, or by the solver kernel).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

if TYPE_CHECKING:
    from pathlib import Path

    from .batch import JobResult
    from .planning import Job

EXIT_OK, EXIT_FAILURES, EXIT_USAGE = 0, 1, 2

app = typer.Typer(
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"tvdenoise {__version__}")
        raise typer.Exit(EXIT_OK)


class _Usage(Exception):
    """A usage or config error: one line on stderr, exit code 2."""


def _given(ctx: typer.Context) -> dict[str, Any]:
    """The settings typed on the command line (not those left at their defaults), by name."""
    given = {}
    for name in RunSettings.fields():
        # Typer vendors its own click: compare the source by name, not by enum identity.
        source = ctx.get_parameter_source(name)
        if source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT"):
            given[name] = ctx.params[name]
    if ctx.params.get("all_frames") and ctx.params.get("stack") == "off":
        given["stack"] = "frames"
    return given


def _summary_line(result: JobResult) -> str:
    record = result.record
    gap = f", gap {record['gap']:.2e}" if record.get("gap") is not None else ""
    state = "converged" if record["converged"] else f"not converged ({record['stop_reason']})"
    weight = ""
    if record.get("weight_auto"):
        how = "estimated" if record["sigma_estimated"] else "given"
        edge = ", at the edge of its search: check --sigma" if record.get("weight_at_edge") else ""
        weight = (
            f"weight {record['weight']:.3g} (auto; sigma {record['sigma'] * 255:.1f}/255 "
            f"{how}{edge}), "
        )
    retried = f" (tried again: {record['retried_after']})" if record.get("retried_after") else ""
    return (
        f"{result.input} -> {result.output}: {weight}{record['iterations']} iterations, "
        f"energy {record['energy']:.6g}{gap}, {state}, {result.seconds:.2f} s{retried}"
    )


def _stage_seconds(result: JobResult) -> str:
    """`` (reading 0.21 s, noise 1.48 s, weight 1.67 s, solving 3.39 s, writing 0.05 s)``: an
    image's seconds by stage, for -v (the record's weight seconds include the noise
    estimate's: shown apart here)."""
    record = result.record
    noise = record.get("sigma_seconds") or 0.0
    weight = record.get("weight_seconds")
    seconds = {
        "reading": record.get("read_seconds"),
        "noise": noise or None,
        "weight": None if weight is None else weight - noise,
        "solving": record.get("solve_seconds"),
        "writing": record.get("write_seconds"),
    }
    parts = [f"{name} {value:.2f} s" for name, value in seconds.items() if value is not None]
    return f" ({', '.join(parts)})" if parts else ""


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[dict[str, int]]:
    """While inside, SIGINT and SIGTERM ask the batch to stop instead of killing it."""
    caught: dict[str, int] = {}

    def handler(signum: int, _frame: Any) -> None:
        # Only set flags here: printing from a signal handler can re-enter the console.
        caught.setdefault("signal", signum)
        stop.set()

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        for sig in previous:
            signal.signal(sig, handler)
    try:
        yield caught
    finally:
        if in_main:
            for sig, old in previous.items():
                signal.signal(sig, old)


_S = RunSettings()  # the defaults --help shows


@app.command(
    cls=opts.GroupedCommand,
    help=(
        "Denoise images by total-variation (ROF) regularisation.\n\n"
        "INPUT is an image file, a folder (its images; --recursive for subfolders), a glob "
        "('scans/**/*.tif') or - for stdin. Outputs go beside the inputs as "
        "NAME_denoised.EXT, or under -o DIR (mirroring folder trees), to -o FILE, or to "
        "stdout with -o -.\n\n"
        "Example: tvdenoise photo.png --weight 0.1  (writes photo_denoised.png)"
    ),
)
def run(
    ctx: typer.Context,
    inputs: opts.Inputs = None,
    # Each settings option's flag, help and group come from its field in tvdenoise.settings.
    weight: opts.Weight = str(_S.solve.weight),
    sigma: opts.Sigma = None,
    beta: opts.Beta = _S.solve.beta,
    tv: opts.Tv = _S.solve.tv,
    tgv_ratio: opts.TgvRatio = _S.solve.tgv_ratio,
    color: opts.Color = _S.solve.color,
    fidelity: opts.Fidelity = _S.solve.fidelity,
    solver: opts.Solver = _S.solve.solver,
    max_iter: opts.MaxIter = _S.solve.max_iter,
    tol: opts.Tol = _S.solve.tol,
    spacing: opts.Spacing = None,
    recursive: opts.Recursive = _S.read.recursive,
    max_pixels: opts.MaxPixels = _S.read.max_pixels,
    mask: opts.Mask = None,
    stack: opts.Stack = _S.read.stack,
    all_frames: opts.AllFrames = False,
    output: opts.Output = None,
    suffix: opts.Suffix = _S.output.suffix,
    name: opts.Name = _S.output.name,
    format: opts.Format = _S.output.format,
    quality: opts.Quality = _S.output.quality,
    compression: opts.Compression = _S.output.compression,
    overwrite: opts.Overwrite = _S.output.overwrite,
    skip_existing: opts.SkipExisting = _S.output.skip_existing,
    tile: opts.Tile = _S.tiles.tile,
    tile_overlap: opts.TileOverlap = _S.tiles.tile_overlap,
    max_memory: opts.MaxMemory = _S.tiles.max_memory,
    device: opts.Device = _S.exec.device,
    workers: opts.Workers = _S.exec.workers,
    batch_size: opts.BatchSize = _S.exec.batch_size,
    shard: opts.Shard = None,
    dask_scheduler: opts.DaskScheduler = None,
    config_file: opts.ConfigFile = None,
    preset: opts.Preset = None,
    show_config: opts.ShowConfig = False,
    report: opts.Report = None,
    reference: opts.Reference = None,
    report_images: opts.ReportImages = 20,
    json_lines: opts.JsonLines = False,
    estimate_noise: opts.EstimateNoise = False,
    dry_run: opts.DryRun = False,
    quiet: opts.Quiet = False,
    verbose: opts.Verbose = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Show the version."
        ),
    ] = False,
) -> None:
    err = Console(stderr=True, highlight=False, emoji=False)
    try:
        settings = config.resolve(
            preset=preset,
            config_file=config_file,
            command_line=_given(ctx),
            denoise=not estimate_noise,
            clips=_all_clips(inputs or []),
        )
        if show_config:
            header = f"tvdenoise {__version__}: effective settings (feed back with --config)"
            sys.stdout.write(config.to_toml(settings, header))
            raise typer.Exit(EXIT_OK)
        exit_code = _run(
            settings,
            inputs or [],
            output,
            shard,
            json_lines=json_lines,
            dry_run=dry_run,
            quiet=quiet,
            verbose=verbose,
            err=err,
            reports=_ReportSpec(report or [], reference, report_images, settings),
            estimate_noise=estimate_noise,
        )
    except (InvalidParameterError, ConfigError, ClusterError, _Usage) as error:
        _error(err, str(error))
        raise typer.Exit(EXIT_USAGE) from None
    raise typer.Exit(exit_code)


def _error(err: Console, message: str) -> None:
    err.print("tvdenoise: error:", style="bold red", end=" ")
    err.print(message, markup=False, soft_wrap=True)


def _all_clips(inputs: list[str]) -> bool:
    """Whether every input names a video clip by its extension (the format table's video
    rows; nothing is imported but the table, so --show-config stays without numpy)."""
    from .io import formats

    def clip(name: str) -> bool:
        spec = formats.by_extension(os.path.splitext(name)[1])
        return spec is not None and spec.codec == "video"

    return bool(inputs) and all(clip(name) for name in inputs)


def _run(
    settings: RunSettings,
    inputs: list[str],
    output: str | None,
    shard_text: str | None,
    *,
    json_lines: bool,
    dry_run: bool,
    quiet: bool,
    err: Console,
    reports: _ReportSpec | None = None,
    estimate_noise: bool = False,
    verbose: bool = False,
) -> int:
    from . import planning

    if quiet and verbose:
        raise _Usage("--quiet and --verbose contradict each other; choose one")
    if not inputs:
        raise _Usage("missing INPUT: give image files, folders, globs or - (see --help)")
    if inputs.count(planning.STDIO) > 1:
        raise _Usage("- (stdin) can be given only once")
    shard = planning.parse_shard(shard_text) if shard_text is not None else None
    scheduler = settings.exec.dask_scheduler
    if scheduler is not None and (planning.STDIO in inputs or output == planning.STDIO):
        raise _Usage(
            "--dask-scheduler sends files to the cluster's workers: stdin (-) and stdout "
            "(-o -) cannot be used with it"
        )

    from pathlib import Path

    exclude = Path(output) if output not in (None, planning.STDIO) else None
    found = planning.discover(inputs, recursive=settings.read.recursive, exclude=exclude)
    if estimate_noise:
        return _estimate_noise(found, settings, json_lines=json_lines, err=err)
    folder_inputs = (
        any(Path(i).is_dir() for i in inputs if i != planning.STDIO)
        or len(found.sources) + len(found.problems) > 1
    )
    jobs, earlier = planning.plan(
        found.sources,
        output,
        suffix=settings.output.suffix,
        template=settings.output.name,
        format=settings.output.format,
        folder_inputs=folder_inputs,
    )
    to_stdout = any(job.target is None for job in jobs)
    if to_stdout and json_lines:
        raise _Usage("--json and an image on stdout cannot share stdout; give -o FILE")
    if to_stdout and dry_run is False and sys.stdout.isatty():
        raise _Usage("refusing to write an image to a terminal; redirect stdout or give -o")
    not_images: list[tuple[str, str]] = []
    for job in list(jobs):
        if job.target is not None:
            from .image_io import output_format_for

            try:
                output_format_for(job.target if job.format is None else f"x.{job.format}")
            except TVDenoiseError as error:
                named_input = (
                    job.format is None
                    and job.source is not None
                    and job.source.suffix.lower() == job.target.suffix.lower()
                )
                if not named_input:  # what the user typed (-o, --format, --name) is wrong
                    raise _Usage(str(error)) from None
                # A file named on the command line that is no image: it fails, the rest runs.
                assert job.source is not None
                suffix = job.source.suffix or "(no extension)"
                not_images.append(
                    (
                        job.label,
                        f"not an image tvdenoise reads (extension {suffix}); if it is one, "
                        "--format png writes it as PNG",
                    )
                )
                jobs.remove(job)
    # With a cluster the device is resolved on each worker, which may have a GPU this lacks.
    if settings.exec.device not in ("auto", "cpu") and scheduler is None:
        from .denoising import resolve_device

        resolve_device(settings.exec.device)
    if shard is not None:
        jobs = planning.shard(jobs, *shard)

    if reports is not None and reports.paths:
        jobs = reports.prepare(jobs)
    client = None
    if scheduler is not None and not dry_run:
        # Before any output, so an unreachable scheduler is one error line and exit code 2.
        from .distributed import connect

        client = connect(scheduler)
        if settings.exec.workers > 1 and not quiet:
            err.print(
                "tvdenoise: --workers is ignored with --dask-scheduler (the cluster's worker "
                "threads run the images)",
                markup=False,
                soft_wrap=True,
            )
    reporter = _Reporter(err, json_lines=json_lines, quiet=quiet, verbose=verbose, reports=reports)
    reporter.order = {job.label: index for index, job in enumerate(jobs)}
    for name, reason in [*found.problems, *not_images]:
        reporter.failed_input(name, reason)
    for name, reason in found.skipped if verbose else []:
        err.print(f"tvdenoise: skipped {name}: {reason}", markup=False, soft_wrap=True)
    if not quiet and (found.skipped_files or found.skipped_folders or earlier):
        parts = []
        if found.skipped_files:
            named = verbose or dry_run or json_lines
            shown = "" if named else " (named by -v, --dry-run and --json)"
            parts.append(f"{found.skipped_files} non-image or hidden files{shown}")
        if found.skipped_folders:
            parts.append(f"{found.skipped_folders} subfolders (use --recursive)")
        if earlier:
            parts.append(f"{earlier} earlier outputs")
        err.print(f"tvdenoise: skipped {', '.join(parts)}", markup=False, soft_wrap=True)
    reporter.totals["skipped_non_images"] = found.skipped_files
    for name, reason in found.skipped:  # named, for scripts and for a look before a run
        if json_lines:
            reporter._emit({"type": "skipped_file", "input": name, "reason": reason})
        elif dry_run:
            sys.stdout.write(f"{name}  [skipped: {reason}]\n")
    reporter.totals["earlier_outputs"] = earlier

    todo: list[Job] = []
    for job in jobs:
        if settings.output.skip_existing and job.target is not None and job.target.exists():
            reporter.skipped(job)
        else:
            todo.append(job)
    if dry_run:
        reporter.plan(todo, overwrite=settings.output.overwrite)
        return reporter.finish(exit_override=EXIT_OK)

    from .batch import remove_stale_temps

    remove_stale_temps(jobs)
    try:
        stdin_data, spooled = _read_stdin(todo)
    except TVDenoiseError as error:  # the spool could not be written (disk full)
        _error(err, str(error))
        return EXIT_FAILURES
    try:
        return _execute(
            todo if spooled is None else [_with_spool(job, spooled) for job in todo],
            settings,
            reporter,
            stdin_data=stdin_data,
            quiet=quiet,
            err=err,
            client=client,
        )
    finally:
        if spooled is not None:
            spooled.unlink(missing_ok=True)


def _read_stdin(jobs: list[Job]) -> tuple[bytes | None, Path | None]:
    """stdin for the job that reads it: its bytes, or for a video clip the file it was
    copied to (beside the output, or in $TMPDIR for stdout) so that it streams."""
    from pathlib import Path

    from .io.video import spool_clip

    job = next((job for job in jobs if job.source is None), None)
    if job is None:
        return None, None
    folder = None if job.target is None else job.target.parent
    if folder is not None and not folder.is_dir():
        folder = None  # created later for the output; spool in $TMPDIR meanwhile
    name = "stdin" if job.target is None else job.target.name
    read = spool_clip(sys.stdin.buffer, folder, name)
    return (None, read) if isinstance(read, Path) else (read, None)


def _with_spool(job: Job, spooled: Path) -> Job:
    from dataclasses import replace

    return replace(job, spooled=spooled) if job.source is None else job


def _estimate_noise(found: Any, settings: RunSettings, *, json_lines: bool, err: Console) -> int:
    """``--estimate-noise``: each image's Gaussian noise sigma on stdout; nothing written."""
    from .image_io import decode_image, load_image, to_unit_range
    from .noise import estimate_sigma

    failures = 0
    for name, reason in found.problems:
        failures += 1
        _error(err, f"{name}: {reason}")
    for source in found.sources:
        try:
            if source.path is None:
                image = decode_image(sys.stdin.buffer.read(), "<stdin>")
            else:
                image = load_image(source.path, max_pixels=settings.read.pixel_limit)
            values, _span = to_unit_range(image.pixels)
            sigma = float(estimate_sigma(values))
        except Exception as error:  # one bad file must not stop the others
            from .batch import describe_error

            failures += 1
            _error(err, describe_error(source.label, error))
            continue
        if json_lines:
            payload = {
                "type": "noise",
                "input": source.label,
                "sigma": sigma,
                "sigma_255": sigma * 255,
                "method": "weak_texture",
            }
            sys.stdout.write(json.dumps(payload) + "\n")
        else:
            sys.stdout.write(f"{source.label}: sigma {sigma:.4g} ({sigma * 255:.1f}/255)\n")
        sys.stdout.flush()
    return EXIT_FAILURES if failures else EXIT_OK


def _execute(
    jobs: list[Job],
    settings: RunSettings,
    reporter: _Reporter,
    *,
    stdin_data: bytes | None,
    quiet: bool,
    err: Console,
    client: Any = None,
) -> int:
    """Run the jobs locally, or on the Dask cluster of ``client`` (closed here)."""
    from .cli_progress import LiveProgress
    from .workers import run_jobs

    workers = min(settings.exec.workers, max(1, len(jobs)))
    if client is not None:
        opening = "sending the images to the Dask cluster"
    elif workers > 1:
        opening = f"starting {workers} worker processes"
    else:
        opening = "starting (loading PyTorch)"
    live = LiveProgress(err, len(jobs), enabled=not quiet and err.is_terminal, opening=opening)
    on_progress = live.event if live.wants_events else None
    stop = threading.Event()
    closing = contextlib.closing(client) if client is not None else contextlib.nullcontext()
    with closing, _stop_on_signals(stop) as caught, live:
        if client is not None:
            from .distributed import run_jobs_dask

            results = run_jobs_dask(
                jobs,
                settings,
                address=client,
                stop=stop,
                on_progress=on_progress,
                report=reporter.wants_records,
            )
        else:
            results = run_jobs(
                jobs,
                settings,
                workers=workers,
                stop=stop,
                stdin_data=stdin_data,
                on_progress=on_progress,
                report=reporter.wants_records,
            )
        finished = 0
        for result in results:
            finished += 1
            live.finished(result.input)
            reporter.result(result, live.console)
            if result.data is not None:
                stdout = sys.stdout.buffer
                stdout.write(result.data)
                stdout.flush()
    reporter.totals["not_started"] = len(jobs) - finished
    signum = caught.get("signal")
    if signum:
        err.print(
            f"tvdenoise: {signal.Signals(signum).name} received: stopping; finished outputs "
            "are kept, the image in progress was not written",
            markup=False,
            soft_wrap=True,
        )
    return reporter.finish(exit_override=128 + signum if signum else None)


class _ReportSpec:
    """``--report``, ``--reference`` and ``--report-images``: checked before any work."""

    def __init__(
        self, paths: list[str], reference: str | None, pictures: int, settings: RunSettings
    ) -> None:
        from pathlib import Path

        from .report import RunReport, report_format

        if pictures < 0:
            raise _Usage(f"--report-images must be >= 0, got {pictures}")
        for path in paths:
            report_format(path)
        if reference is not None and not Path(reference).exists():
            raise _Usage(f"--reference {reference}: no such file or folder")
        if reference is not None and not paths:
            raise _Usage("--reference needs --report PATH (where PSNR and SSIM are written)")
        self.paths, self.reference, self.pictures = paths, reference, pictures
        self.run = RunReport(command=list(sys.argv), settings=settings.values())

    def prepare(self, jobs: list[Job]) -> list[Job]:
        """Attach each job's reference image and whether it gets pictures."""
        from dataclasses import replace
        from pathlib import Path

        from .report import find_reference

        prepared = []
        for index, job in enumerate(jobs):
            reference = None
            if self.reference is not None:
                relative = job.relative if job.relative is not None else Path("stdin")
                reference = find_reference(self.reference, relative)
            prepared.append(replace(job, reference=reference, pictures=index < self.pictures))
        return prepared


class _Reporter:
    """Per-image lines (stderr, or JSON on stdout), the final summary and report files."""

    def __init__(
        self,
        err: Console,
        *,
        json_lines: bool,
        quiet: bool,
        verbose: bool = False,
        reports: _ReportSpec | None = None,
    ) -> None:
        self.err = err
        self.json_lines = json_lines
        self.quiet = quiet
        self.verbose = verbose
        self.start = time.perf_counter()
        self.counts = {"ok": 0, "failed": 0, "skipped": 0, "interrupted": 0}
        self.totals: dict[str, Any] = {}
        self.reports = reports if reports is not None and reports.paths else None
        self.records: list[Any] = []
        #: Plan position of each input, so reports list images in order, not finishing order.
        self.order: dict[str, int] = {}

    @property
    def wants_records(self) -> bool:
        return self.reports is not None

    def _record(self, input_name: str, output: str | None, error: str, status: str) -> None:
        if self.reports is not None:
            from .report import failed_record

            self.records.append(failed_record(input_name, output, error, status=status))

    def _write_reports(self) -> None:
        """Write every --report file; a failure is one error line (and exit code 1)."""
        if self.reports is None:
            return
        from dataclasses import replace
        from datetime import datetime, timezone

        from .report import write_report

        run = replace(self.reports.run, finished=datetime.now(timezone.utc))
        self.records.sort(key=lambda record: self.order.get(record.input, -1))
        for path in self.reports.paths:
            try:
                write_report(path, run, self.records)
            except TVDenoiseError as error:
                self.counts["failed"] += 1
                _error(self.err, f"report {error}")
                continue
            if not self.quiet:
                self.err.print(f"tvdenoise: report written to {path}", markup=False, soft_wrap=True)

    def _emit(self, payload: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(payload, default=str) + "\n")
        sys.stdout.flush()

    def failed_input(self, name: str, reason: str) -> None:
        self.counts["failed"] += 1
        self._record(name, None, f"{name}: {reason}", "failed")
        _error(self.err, f"{name}: {reason}")
        if self.json_lines:
            self._emit(
                {
                    "type": "image",
                    "input": name,
                    "output": None,
                    "status": "failed",
                    "error": f"{name}: {reason}",
                }
            )

    def skipped(self, job: Job) -> None:
        self.counts["skipped"] += 1
        self._record(job.label, job.target_label, "output exists (--skip-existing)", "skipped")
        if not self.quiet:
            self.err.print(
                f"{job.label}: skipped, {job.target_label} exists", markup=False, soft_wrap=True
            )
        if self.json_lines:
            self._emit(
                {
                    "type": "image",
                    "input": job.label,
                    "output": job.target_label,
                    "status": "skipped",
                    "error": None,
                }
            )

    def result(self, result: JobResult, console: Console) -> None:
        self.counts[result.status] += 1
        if result.status == "ok":
            # Written, but worth a look: say so in the summary, not only on the image's line.
            if result.record.get("converged") is False:
                self.totals["not_converged"] = self.totals.get("not_converged", 0) + 1
            if result.record.get("weight_at_edge"):
                self.totals["weight_at_edge"] = self.totals.get("weight_at_edge", 0) + 1
        if self.reports is not None:
            self.records.append(result.report_record())
        if result.status == "failed":
            _error(console, result.error or f"{result.input}: failed")
        elif result.status == "interrupted":
            if not self.quiet:
                console.print(
                    f"{result.input}: interrupted, nothing written", markup=False, soft_wrap=True
                )
        elif result.status == "skipped":  # another run sharing the folder has it
            if not self.quiet:
                console.print(
                    f"{result.input}: skipped, {result.error}", markup=False, soft_wrap=True
                )
        elif not self.quiet:
            line = _summary_line(result) + (_stage_seconds(result) if self.verbose else "")
            console.print(line, markup=False, soft_wrap=True)
        if self.json_lines:
            self._emit({"type": "image", **result.as_dict()})

    def plan(self, jobs: list[Job], *, overwrite: bool) -> None:
        for job in jobs:
            exists = job.target is not None and job.target.exists()
            action = "denoise"
            if exists:
                action = "overwrite" if overwrite else "fail (output exists)"
            if self.json_lines:
                self._emit(
                    {
                        "type": "plan",
                        "input": job.label,
                        "output": job.target_label,
                        "action": action,
                    }
                )
            else:
                note = f"  [{action}]" if exists else ""
                sys.stdout.write(f"{job.label} -> {job.target_label}{note}\n")
        self.totals["planned"] = len(jobs)

    def finish(self, *, exit_override: int | None = None) -> int:
        if "planned" not in self.totals:
            self._write_reports()
        code = EXIT_FAILURES if self.counts["failed"] else EXIT_OK
        if exit_override is not None:
            code = exit_override
        seconds = time.perf_counter() - self.start
        summary = {**self.counts, **self.totals, "seconds": round(seconds, 3), "exit_code": code}
        if self.json_lines:
            self._emit({"type": "summary", **summary})
        several = (
            sum(self.counts.values()) > 1
            or self.totals.get("not_started")
            or self.totals.get("not_converged")
            or self.totals.get("weight_at_edge")
        )
        if not self.quiet and "planned" not in self.totals and (several or exit_override):
            parts = [f"{n} {state}" for state, n in self.counts.items() if n]
            if self.totals.get("not_started"):
                parts.append(f"{self.totals['not_started']} not started")
            if self.totals.get("not_converged"):
                parts.append(f"{self.totals['not_converged']} not converged (see --max-iter)")
            if self.totals.get("weight_at_edge"):
                parts.append(
                    f"{self.totals['weight_at_edge']} with the automatic weight at the edge "
                    "of its search (check --sigma)"
                )
            self.err.print(
                f"tvdenoise: {', '.join(parts) or 'nothing to do'} in {seconds:.1f} s",
                markup=False,
                soft_wrap=True,
            )
        return code


def main() -> None:
    """Console-script entry point."""
    app(prog_name="tvdenoise")


if __name__ == "__main__":  # pragma: no cover
    main()
