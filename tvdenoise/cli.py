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
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from . import _validate, config
from ._version import __version__
from .errors import ClusterError, ConfigError, InvalidParameterError, TVDenoiseError
from .io import formats

# OpenMP threads that spin at barriers waiting for work slow every parallel step several times
# on a machine that is also running other things (measured in benchmarks/RESULTS.md); a
# command-line tool shares its machine, so wait passively unless the user chose otherwise.
# Set before torch is imported (here, by the workers' fork server, or by the solver kernel).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

if TYPE_CHECKING:
    from .batch import JobResult
    from .planning import Job

EXIT_OK, EXIT_FAILURES, EXIT_USAGE = 0, 1, 2
DEVICE_HELP = "auto (CUDA when available), cpu, cuda or cuda:N."

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


def _effective_settings(
    ctx: typer.Context, given: dict[str, Any], preset: str | None, config_file: str | None
) -> dict[str, Any]:
    """Defaults < preset < config file < options given on the command line."""
    settings = dict(config.DEFAULTS)
    if preset is not None:
        settings.update(config.load_preset(preset))
    if config_file is not None:
        settings.update(config.load_config(config_file))
    for key, value in given.items():
        # Typer vendors its own click: compare the source by name, not by enum identity.
        source = ctx.get_parameter_source(
            "all_frames"
            if key == "stack" and value == "frames" and ctx.params.get("all_frames")
            else key
        )
        if source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT"):
            settings[key] = config.check_value(key, value, flag=True)
    return settings


def _summary_line(result: JobResult) -> str:
    record = result.record
    gap = f", gap {record['gap']:.2e}" if record.get("gap") is not None else ""
    state = "converged" if record["converged"] else f"not converged ({record['stop_reason']})"
    weight = ""
    if record.get("weight_auto"):
        how = "estimated" if record["sigma_estimated"] else "given"
        edge = ", at the edge of its search: check --sigma" if record.get("weight_at_edge") else ""
        weight = (
            f"weight {record['weight_used']:.3g} (auto; sigma {record['sigma'] * 255:.1f}/255 "
            f"{how}{edge}), "
        )
    retried = f" (tried again: {record['retried_after']})" if record.get("retried_after") else ""
    return (
        f"{result.input} -> {result.output}: {weight}{record['iterations']} iterations, "
        f"energy {record['energy']:.6g}{gap}, {state}, {result.seconds:.2f} s{retried}"
    )


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


@app.command(
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
    inputs: list[str] | None = typer.Argument(
        None,
        metavar="INPUT...",
        help="Image files, folders, globs, or - (stdin).",
        show_default=False,
    ),
    output: str | None = typer.Option(
        None,
        "--output",
        "-o",
        metavar="PATH",
        help="Output file (one input), folder, or - (stdout).",
    ),
    weight: str = typer.Option(
        config.DEFAULTS["weight"],
        "--weight",
        "-w",
        metavar="FLOAT|auto",
        help="Regularisation weight > 0, or auto: chosen per image by minimising SURE.",
    ),
    sigma: str | None = typer.Option(
        None,
        "--sigma",
        metavar="S",
        help="Noise level for --weight auto, on the [0, 1] scale (at most 0.5) or as 25/255 "
        "(default: estimated from each image).",
    ),
    estimate_noise: bool = typer.Option(
        False,
        "--estimate-noise",
        help="Only print each image's estimated noise sigma (with --json: JSON lines).",
    ),
    beta: float = typer.Option(
        config.DEFAULTS["beta"],
        "--beta",
        metavar="FLOAT",
        help="Exponent on the gradient magnitude, > 0.",
    ),
    tv: str = typer.Option(
        config.DEFAULTS["tv"], "--tv", metavar="KIND", help="symmetric, isotropic or anisotropic."
    ),
    color: str = typer.Option(
        config.DEFAULTS["color"], "--color", metavar="COUPLING", help="vectorial or channelwise."
    ),
    fidelity: str = typer.Option(
        config.DEFAULTS["fidelity"],
        "--fidelity",
        metavar="NAME",
        help="Data term: l2 (Gaussian noise), l1 (impulse noise) or poisson (counts).",
    ),
    solver: str = typer.Option(
        config.DEFAULTS["solver"],
        "--solver",
        metavar="NAME",
        help=f"{', '.join(_validate.SOLVER_NAMES[:-1])} or {_validate.SOLVER_NAMES[-1]}.",
    ),
    max_iter: int = typer.Option(
        config.DEFAULTS["max_iter"], "--max-iter", metavar="N", help="Iteration cap."
    ),
    tol: float = typer.Option(
        config.DEFAULTS["tol"],
        "--tol",
        metavar="FLOAT",
        help="Relative gap (or its bound) to stop at.",
    ),
    device: str = typer.Option(
        config.DEFAULTS["device"], "--device", metavar="DEVICE", help=DEVICE_HELP
    ),
    tile: int = typer.Option(
        config.DEFAULTS["tile"],
        "--tile",
        metavar="PX",
        help="Denoise in overlapping tiles of PX x PX pixels (bounded memory for huge "
        "images); 0: only when the image exceeds --max-memory.",
    ),
    tile_overlap: int = typer.Option(
        config.DEFAULTS["tile_overlap"],
        "--tile-overlap",
        metavar="PX",
        help="Overlap between tiles; 64 keeps tiled results within 1e-3 of untiled ones.",
    ),
    max_memory: str = typer.Option(
        config.DEFAULTS["max_memory"],
        "--max-memory",
        metavar="SIZE",
        help="Solver memory budget per worker, e.g. 2GiB; larger images are tiled.",
    ),
    batch_size: int = typer.Option(
        config.DEFAULTS["batch_size"],
        "--batch-size",
        metavar="N",
        help="Denoise up to N same-size images as one batch (fast on a GPU; fixed weight).",
    ),
    recursive: bool = typer.Option(
        False, "--recursive/--no-recursive", "-r", help="Include subfolders of folder inputs."
    ),
    suffix: str = typer.Option(
        config.DEFAULTS["suffix"],
        "--suffix",
        metavar="TEXT",
        help="Added to each output's stem.",
    ),
    name: str | None = typer.Option(
        None,
        "--name",
        metavar="TEMPLATE",
        help="Output name template, e.g. '{stem}_tv{suffix}': {stem}, {name}, {suffix} "
        "(extension with dot), {ext}, {tag} (the --suffix text).",
    ),
    format: str | None = typer.Option(
        None,
        "--format",
        metavar="FMT",
        help=f"Convert outputs to {formats.option_list()}.",
    ),
    quality: int | None = typer.Option(
        None,
        "--quality",
        metavar="N",
        help="JPEG/WebP quality 1-100 (default: the input JPEG's, else 95).",
    ),
    max_pixels: int = typer.Option(
        config.DEFAULT_MAX_PIXELS,
        "--max-pixels",
        metavar="N",
        help="Refuse larger images (decompression-bomb guard); 0: no limit.",
    ),
    mask: str | None = typer.Option(
        None,
        "--mask",
        metavar="FILE|nan",
        help="Leave pixels out of the data term (TV fills them): 'nan' for the NaN pixels of "
        "float images (FITS always), or a mask image, black where the data is ignored.",
    ),
    stack: str = typer.Option(
        config.DEFAULTS["stack"],
        "--stack",
        metavar="MODE",
        help="Multi-page files: off, frames (each page alone) or volume (3-D TV).",
    ),
    spacing: str | None = typer.Option(
        None,
        "--spacing",
        metavar="STEPS",
        help="Grid steps, 'dy,dx' or with --stack volume 'dz,dy,dx' (e.g. '3,1,1' for a "
        "z-step three times the pixel size).",
    ),
    all_frames: bool = typer.Option(
        False, "--all-frames", help="Denoise every frame of a GIF/WebP (same as --stack frames)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    skip_existing: bool = typer.Option(
        False,
        "--skip-existing/--no-skip-existing",
        help="Leave existing outputs alone (resume an interrupted batch).",
    ),
    workers: int = typer.Option(
        config.DEFAULTS["workers"],
        "--workers",
        "-j",
        metavar="N",
        help="Parallel worker processes.",
    ),
    shard: str | None = typer.Option(
        None, "--shard", metavar="K/N", help="Process only shard K of N (1 <= K <= N)."
    ),
    dask_scheduler: str | None = typer.Option(
        None,
        "--dask-scheduler",
        metavar="ADDRESS",
        help="Denoise on a Dask cluster's workers, e.g. tcp://host:8786 (needs "
        "tvdenoise[dask] and a filesystem shared with the workers; --workers is ignored).",
    ),
    config_file: str | None = typer.Option(
        None, "--config", metavar="FILE", help="TOML settings file (see --show-config)."
    ),
    preset: str | None = typer.Option(
        None,
        "--preset",
        metavar="NAME",
        help="Shipped settings: " + ", ".join(config.preset_names()) + ".",
    ),
    show_config: bool = typer.Option(
        False, "--show-config", help="Print the effective settings as TOML and exit."
    ),
    report: list[str] | None = typer.Option(
        None,
        "--report",
        metavar="PATH",
        help="Write a report of the run: .json, .csv or .html (repeat for several).",
    ),
    reference: str | None = typer.Option(
        None,
        "--reference",
        metavar="PATH",
        help="Clean image, or folder matched by relative path: adds PSNR/SSIM to the report.",
    ),
    report_images: int = typer.Option(
        20,
        "--report-images",
        metavar="N",
        help="How many images get pictures in an HTML report.",
    ),
    json_lines: bool = typer.Option(
        False, "--json", help="JSON lines on stdout: one per image, then a summary."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be done; do nothing."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or summaries."),
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Show the version."
    ),
) -> None:
    err = Console(stderr=True, highlight=False, emoji=False)
    given = dict(
        weight=weight,
        sigma=sigma,
        beta=beta,
        tv=tv,
        color=color,
        fidelity=fidelity,
        solver=solver,
        max_iter=max_iter,
        tol=tol,
        device=device,
        workers=workers,
        suffix=suffix,
        name=name,
        format=format,
        quality=quality,
        max_pixels=max_pixels,
        mask=mask,
        stack="frames" if all_frames and stack == "off" else stack,
        spacing=spacing,
        tile=tile,
        tile_overlap=tile_overlap,
        max_memory=max_memory,
        batch_size=batch_size,
        recursive=recursive,
        skip_existing=skip_existing,
        dask_scheduler=dask_scheduler,
    )
    try:
        settings = _effective_settings(ctx, given, preset, config_file)
        if show_config:
            header = f"tvdenoise {__version__}: effective settings (feed back with --config)"
            sys.stdout.write(config.to_toml(settings, header))
            raise typer.Exit(EXIT_OK)
        exit_code = _run(
            settings,
            inputs or [],
            output,
            shard,
            overwrite=overwrite,
            json_lines=json_lines,
            dry_run=dry_run,
            quiet=quiet,
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
    """Whether every input names a video clip by its extension."""
    from .io import formats
    from .io.video import is_video

    def clip(name: str) -> bool:
        spec = formats.by_extension(os.path.splitext(name)[1])
        return spec is not None and is_video(spec.name)

    return all(clip(name) for name in inputs)


def _run(
    settings: dict[str, Any],
    inputs: list[str],
    output: str | None,
    shard_text: str | None,
    *,
    overwrite: bool,
    json_lines: bool,
    dry_run: bool,
    quiet: bool,
    err: Console,
    reports: _ReportSpec | None = None,
    estimate_noise: bool = False,
) -> int:
    from . import _validate, planning

    if not inputs:
        raise _Usage("missing INPUT: give image files, folders, globs or - (see --help)")
    auto = settings["weight"] == "auto"
    _validate.validate_options(
        weight=1.0 if auto else settings["weight"],
        **{key: settings[key] for key in ("beta", "tv", "color", "fidelity")},
        solver=settings["solver"],
        max_iter=settings["max_iter"],
        tol=settings["tol"],
        flags=True,
    )
    if auto and settings["fidelity"] != "l2" and not estimate_noise:
        raise _Usage(
            f"--weight auto chooses the weight for Gaussian noise (--fidelity l2); give "
            f"--weight for --fidelity {settings['fidelity']}"
        )
    # Clips choose the automatic weight once, on their first frame (tvdenoise.streaming).
    if auto and settings["stack"] == "volume" and not estimate_noise and not _all_clips(inputs):
        raise _Usage("--stack volume needs a numeric --weight (auto is for 2-D images)")
    spacing = settings["spacing"]
    if spacing is not None and (len(spacing) == 3) != (settings["stack"] == "volume"):
        raise _Usage(
            f"--spacing has {len(spacing)} steps: give 3 (dz, dy, dx) with --stack volume and "
            "2 (dy, dx) otherwise"
        )
    if settings["tile"] and settings["tile_overlap"] >= settings["tile"]:
        raise _Usage(
            f"--tile-overlap ({settings['tile_overlap']}) must be smaller than --tile "
            f"({settings['tile']})"
        )
    if settings["sigma"] is not None and not auto:
        raise _Usage("--sigma is used only with --weight auto")
    if overwrite and settings["skip_existing"]:
        raise _Usage("--overwrite and --skip-existing contradict each other; choose one")
    if inputs.count(planning.STDIO) > 1:
        raise _Usage("- (stdin) can be given only once")
    shard = planning.parse_shard(shard_text) if shard_text is not None else None
    scheduler = settings["dask_scheduler"]
    if scheduler is not None and (planning.STDIO in inputs or output == planning.STDIO):
        raise _Usage(
            "--dask-scheduler sends files to the cluster's workers: stdin (-) and stdout "
            "(-o -) cannot be used with it"
        )

    from pathlib import Path

    exclude = Path(output) if output not in (None, planning.STDIO) else None
    found = planning.discover(inputs, recursive=settings["recursive"], exclude=exclude)
    if estimate_noise:
        return _estimate_noise(found, settings, json_lines=json_lines, err=err)
    folder_inputs = (
        any(Path(i).is_dir() for i in inputs if i != planning.STDIO)
        or len(found.sources) + len(found.problems) > 1
    )
    jobs, earlier = planning.plan(
        found.sources,
        output,
        suffix=settings["suffix"],
        template=settings["name"],
        format=settings["format"],
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
    if settings["device"] not in ("auto", "cpu") and scheduler is None:
        from .denoising import resolve_device

        resolve_device(settings["device"])
    if shard is not None:
        jobs = planning.shard(jobs, *shard)

    if reports is not None and reports.paths:
        jobs = reports.prepare(jobs)
    client = None
    if scheduler is not None and not dry_run:
        # Before any output, so an unreachable scheduler is one error line and exit code 2.
        from .distributed import connect

        client = connect(scheduler)
        if settings["workers"] > 1 and not quiet:
            err.print(
                "tvdenoise: --workers is ignored with --dask-scheduler (the cluster's worker "
                "threads run the images)",
                markup=False,
                soft_wrap=True,
            )
    reporter = _Reporter(err, json_lines=json_lines, quiet=quiet, reports=reports)
    reporter.order = {job.label: index for index, job in enumerate(jobs)}
    for name, reason in [*found.problems, *not_images]:
        reporter.failed_input(name, reason)
    if not quiet and (found.skipped_files or found.skipped_folders or earlier):
        parts = []
        if found.skipped_files:
            shown = " (named by --dry-run and --json)" if not (dry_run or json_lines) else ""
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
        if settings["skip_existing"] and job.target is not None and job.target.exists():
            reporter.skipped(job)
        else:
            todo.append(job)
    if dry_run:
        reporter.plan(todo, overwrite=overwrite)
        return reporter.finish(exit_override=EXIT_OK)

    from .batch import remove_stale_temps

    remove_stale_temps(jobs)
    stdin_data = None
    if any(job.source is None for job in todo):
        stdin_data = sys.stdin.buffer.read()
    return _execute(
        todo,
        settings,
        reporter,
        overwrite=overwrite,
        stdin_data=stdin_data,
        quiet=quiet,
        err=err,
        client=client,
    )


def _estimate_noise(found: Any, settings: dict[str, Any], *, json_lines: bool, err: Console) -> int:
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
                image = load_image(source.path, max_pixels=settings["max_pixels"] or None)
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
    settings: dict[str, Any],
    reporter: _Reporter,
    *,
    overwrite: bool,
    stdin_data: bytes | None,
    quiet: bool,
    err: Console,
    client: Any = None,
) -> int:
    """Run the jobs locally, or on the Dask cluster of ``client`` (closed here)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .workers import run_jobs

    workers = min(settings["workers"], max(1, len(jobs)))
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=err,
        disable=quiet or not err.is_terminal,
        transient=True,
    )
    stop = threading.Event()
    closing = contextlib.closing(client) if client is not None else contextlib.nullcontext()
    with closing, _stop_on_signals(stop) as caught, progress:
        overall = progress.add_task("images", total=len(jobs), status="") if len(jobs) > 1 else None
        current: dict[str, Any] = {}

        def on_start(job: Job) -> None:
            if workers == 1:
                for task_id in current.values():
                    progress.remove_task(task_id)
                label = job.label if job.source is None else job.source.name
                current["task"] = progress.add_task(label, total=settings["max_iter"], status="")

        def on_iteration(info: Any) -> None:
            if hasattr(info, "frames"):  # a clip counts frames (tvdenoise.streaming)
                total = info.total or None
                progress.update(
                    current["task"], completed=info.frames, total=total, status="frames"
                )
                return
            status = f"gap {info.gap:.1e}" if info.gap is not None else ""
            progress.update(current["task"], completed=info.iteration, status=status)

        if client is not None:
            from .distributed import run_jobs_dask

            results = run_jobs_dask(
                jobs,
                settings,
                address=client,
                overwrite=overwrite,
                stop=stop,
                report=reporter.wants_records,
            )
        else:
            results = run_jobs(
                jobs,
                settings,
                workers=workers,
                overwrite=overwrite,
                stop=stop,
                stdin_data=stdin_data,
                on_start=on_start,
                on_iteration=on_iteration,
                report=reporter.wants_records,
            )
        finished = 0
        for result in results:
            finished += 1
            reporter.result(result, progress.console)
            if result.data is not None:
                stdout = sys.stdout.buffer
                stdout.write(result.data)
                stdout.flush()
            if overall is not None:
                progress.advance(overall)
        for task_id in list(progress.task_ids):
            progress.remove_task(task_id)
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
        self, paths: list[str], reference: str | None, pictures: int, settings: dict[str, Any]
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
        self.run = RunReport(command=list(sys.argv), settings=dict(settings))

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
        self, err: Console, *, json_lines: bool, quiet: bool, reports: _ReportSpec | None = None
    ) -> None:
        self.err = err
        self.json_lines = json_lines
        self.quiet = quiet
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
        if result.report is not None:
            self.records.append(result.report)
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
            console.print(_summary_line(result), markup=False, soft_wrap=True)
        if self.json_lines:
            record = {"type": "image", **result.as_dict()}
            if result.status in ("failed", "interrupted"):
                # Nothing was written for it: no output path that a script could take as real.
                record["output"] = None
            self._emit(record)

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
