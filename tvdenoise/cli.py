"""The ``tvdenoise`` command: argument handling and terminal output, nothing else.

Heavy modules (torch, numpy, Pillow) are imported inside the command, so ``--help`` and
``--version`` return at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from . import __version__, _validate
from .errors import ImageWriteError, InvalidParameterError, TVDenoiseError

if TYPE_CHECKING:
    from .solvers.base import IterationInfo, SolveRecord

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


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path


def _plan(inputs: list[str], output: str | None) -> list[Job]:
    """Map each input to its output path, or raise InvalidParameterError (a usage error).

    Everything that can be known before any work is checked here: stdin/stdout, folders given
    as files, output formats, and two inputs that would be written to one output.
    """
    from .image_io import output_format_for

    if "-" in inputs or output == "-":
        raise InvalidParameterError(
            "reading from stdin or writing to stdout (-) is not supported yet"
        )
    sources = [Path(name) for name in inputs]
    for source in sources:
        if source.is_dir():
            raise InvalidParameterError(f"{source}: is a folder; give image files")
    out_dir: Path | None = None
    if output is not None:
        out = Path(output)
        if out.is_dir() or output.endswith(("/", os.sep)):
            out_dir = out
        elif len(sources) > 1:
            if out.suffix:
                raise InvalidParameterError(
                    f"-o {output}: several inputs need an output folder, not a file"
                )
            out_dir = out
    jobs = []
    for source in sources:
        if output is not None and out_dir is None:
            target = Path(output)
        else:
            name = f"{source.stem}_denoised{source.suffix}"
            target = (out_dir if out_dir is not None else source.parent) / name
        jobs.append(Job(source, target))
    seen: dict[Path, Path] = {}
    for job in jobs:
        try:
            output_format_for(job.target)
        except TVDenoiseError as error:
            raise InvalidParameterError(str(error)) from None
        key = job.target.resolve()
        if key in seen:
            raise InvalidParameterError(
                f"{seen[key]} and {job.source} would both be written to {job.target}"
            )
        if key == job.source.resolve():
            raise InvalidParameterError(f"{job.source}: output would overwrite the input")
        seen[key] = job.source
    return jobs


def _describe(job: Job, error: Exception) -> str:
    """One line naming the file and the problem."""
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    if not isinstance(error, TVDenoiseError):
        message = f"unexpected {type(error).__name__}: {message}"
    if not message.startswith((str(job.source), str(job.target))):
        message = f"{job.source}: {message}"
    return message


def _make_parent(target: Path) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ImageWriteError(
            f"{target}: cannot create folder {target.parent} ({error.strerror or error})"
        ) from error


def _summary(job: Job, record: SolveRecord) -> str:
    gap = f", gap {record.gap:.2e}" if record.gap is not None else ""
    state = "converged" if record.converged else f"not converged ({record.stop_reason})"
    return (
        f"{job.source} -> {job.target}: {record.iterations} iterations, "
        f"energy {record.energy:.6g}{gap}, {state}, {record.seconds:.2f} s"
    )


@app.command(
    help=(
        "Denoise images by total-variation (ROF) regularisation.\n\n"
        "Example: tvdenoise photo.png --weight 0.1  (writes photo_denoised.png)"
    ),
)
def run(
    inputs: list[str] = typer.Argument(
        ..., metavar="INPUT", help="Image files.", show_default=False
    ),
    output: str | None = typer.Option(
        None, "--output", "-o", metavar="PATH", help="Output file (one input) or folder."
    ),
    weight: float = typer.Option(
        0.1, "--weight", "-w", metavar="FLOAT", help="Regularisation weight, > 0."
    ),
    beta: float = typer.Option(
        1.0, "--beta", metavar="FLOAT", help="Exponent on the gradient magnitude, > 0."
    ),
    tv: str = typer.Option("isotropic", "--tv", metavar="KIND", help="isotropic or anisotropic."),
    color: str = typer.Option(
        "vectorial", "--color", metavar="COUPLING", help="vectorial or channelwise."
    ),
    fidelity: str = typer.Option(
        "l2", "--fidelity", metavar="NAME", help="Data term: l2 (Gaussian noise)."
    ),
    solver: str = typer.Option(
        "auto", "--solver", metavar="NAME", help=", ".join(_validate.SOLVER_NAMES) + "."
    ),
    max_iter: int = typer.Option(
        _validate.DEFAULT_MAX_ITER, "--max-iter", metavar="N", help="Iteration cap."
    ),
    tol: float = typer.Option(
        _validate.DEFAULT_TOL,
        "--tol",
        metavar="FLOAT",
        help="Relative gap (or its bound) to stop at.",
    ),
    device: str = typer.Option("auto", "--device", metavar="DEVICE", help=DEVICE_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or summaries."),
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Show the version."
    ),
) -> None:
    err = Console(stderr=True, highlight=False)
    try:
        options = _validate.validate_options(
            weight=weight,
            beta=beta,
            tv=tv,
            color=color,
            fidelity=fidelity,
            solver=solver,
            max_iter=max_iter,
            tol=tol,
            flags=True,
        )
        jobs = _plan(inputs, output)
        from .denoising import resolve_device

        options["device"] = resolve_device(device)
    except InvalidParameterError as error:
        err.print(f"tvdenoise: error: {error}", markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None

    failures = _process(jobs, options, overwrite=overwrite, quiet=quiet, err=err)
    raise typer.Exit(EXIT_FAILURES if failures else EXIT_OK)


def _process(
    jobs: list[Job], options: dict[str, Any], *, overwrite: bool, quiet: bool, err: Console
) -> int:
    """Denoise every job; report each on stderr; return the number of failures."""
    from dataclasses import replace

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from .denoising import denoise
    from .image_io import from_float, load_image, save_image, to_float

    failures = 0
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} it"),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=err,
        disable=quiet or not err.is_terminal,
        transient=True,
    )
    with progress:
        for job in jobs:
            try:
                if job.target.exists() and not overwrite:
                    raise TVDenoiseError(f"{job.target}: exists (use --overwrite to replace it)")
                image = load_image(job.source)
                task = progress.add_task(job.source.name, total=options["max_iter"], status="")

                def on_iteration(info: IterationInfo, task: Any = task) -> None:
                    status = f"gap {info.gap:.1e}" if info.gap is not None else ""
                    progress.update(task, completed=info.iteration, status=status)

                result, record = denoise(
                    to_float(image.pixels),
                    **options,
                    callback=on_iteration,
                    return_record=True,
                )
                denoised = replace(image, pixels=from_float(result, image.pixels.dtype))
                _make_parent(job.target)
                save_image(job.target, denoised, overwrite=overwrite)
            except Exception as error:  # one bad file must not stop the batch
                failures += 1
                err.print(
                    f"tvdenoise: error: {_describe(job, error)}", markup=False, soft_wrap=True
                )
                continue
            finally:
                for task_id in list(progress.task_ids):
                    progress.remove_task(task_id)
            if not quiet:
                err.print(_summary(job, record), markup=False, soft_wrap=True)
    return failures


def main() -> None:
    """Console-script entry point."""
    app(prog_name="tvdenoise")


if __name__ == "__main__":  # pragma: no cover
    main()
