"""From the inputs a user names to a list of jobs, before any pixel is read (no torch).

:func:`discover` expands files, folders (optionally recursive), globs and ``-`` (stdin) into
image files in a stable, sorted order; :func:`plan` maps each to its output path and refuses,
before any work starts, a plan that would write two images to one file or over an input;
:func:`shard` keeps a deterministic 1/N of a plan.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InvalidParameterError
from .io import formats

__all__ = ["STDIO", "Discovery", "Job", "Source", "discover", "parse_shard", "plan", "shard"]

#: The name that stands for stdin as an input and stdout as an output.
STDIO = "-"

_GLOB_CHARACTERS = frozenset("*?[")

#: Canonical extension of each output format, for ``--format`` conversions.
FORMAT_EXTENSIONS = {spec.option: spec.extensions[0] for spec in formats.FORMATS}


@dataclass(frozen=True)
class Source:
    """One input image: its path (None for stdin), and its path relative to the folder it was
    found in (used to mirror the tree under an output folder)."""

    path: Path | None
    relative: Path
    discovered: bool = False  # found by listing a folder or a glob, not named by the user

    @property
    def label(self) -> str:
        return STDIO if self.path is None else os.fspath(self.path)


@dataclass
class Discovery:
    sources: list[Source] = field(default_factory=list)
    #: Inputs that could not be used (missing file, glob matching nothing): (input, reason).
    problems: list[tuple[str, str]] = field(default_factory=list)
    #: Files in listed folders that are not images (by extension) or are hidden.
    skipped_files: int = 0
    #: Those files, with why each was left out: (path, reason).
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def skip(self, path: Path) -> None:
        """Leave out a file found in a folder or by a pattern, saying why."""
        self.skipped_files += 1
        if path.name.startswith("."):
            reason = "hidden file"
        else:
            extension = path.suffix or "none"
            reason = (
                f"not an image extension ({extension}); if it is an image, name it on the "
                "command line with --format png"
            )
        self.skipped.append((os.fspath(path), reason))

    #: Subfolders of listed folders left out because --recursive was not given.
    skipped_folders: int = 0


def _is_image_name(path: Path) -> bool:
    return path.suffix.lower() in formats.EXTENSIONS


def _list_folder(
    folder: Path, recursive: bool, exclude: Path | None, found: Discovery
) -> list[Source]:
    sources = []
    for current, folders, files in os.walk(folder):
        here = Path(current)
        folders.sort()
        kept = []
        for name in folders:
            child = here / name
            if name.startswith("."):
                continue
            if exclude is not None and child.resolve() == exclude:
                continue
            if recursive:
                kept.append(name)
            else:
                found.skipped_folders += 1
        folders[:] = kept
        for name in sorted(files):
            path = here / name
            if name.startswith(".") or not _is_image_name(path):
                found.skip(path)
                continue
            sources.append(Source(path, path.relative_to(folder), discovered=True))
    sources.sort(key=lambda source: source.relative.as_posix())
    return sources


def discover(
    inputs: list[str], *, recursive: bool = False, exclude: Path | None = None
) -> Discovery:
    """Expand the inputs into image sources, in order: each input in the order given, the
    contents of a folder or a glob sorted by path; a file named twice is kept once.

    ``exclude`` is a folder never to look into (the output folder, when it lies inside an
    input folder). Folders and globs skip hidden files and files whose extension is not an
    image format (counted in the result); files named explicitly are always kept, their
    content decides.
    """
    found = Discovery()
    exclude = exclude.resolve() if exclude is not None else None
    seen: set[Path] = set()

    def add(source: Source) -> None:
        key = source.path.resolve() if source.path is not None else Path(STDIO)
        if key not in seen:
            seen.add(key)
            found.sources.append(source)

    for name in inputs:
        if name == STDIO:
            add(Source(None, Path("stdin")))
            continue
        path = Path(name)
        if path.is_dir():
            for source in _list_folder(path, recursive, exclude, found):
                add(source)
        elif path.exists():
            add(Source(path, Path(path.name)))
        elif _GLOB_CHARACTERS & set(name):
            matches = sorted(glob.glob(name, recursive=True))
            if not matches:
                found.problems.append((name, "no files match this pattern"))
            for match in matches:
                match_path = Path(match)
                if match_path.is_dir():
                    for source in _list_folder(match_path, recursive, exclude, found):
                        add(source)
                elif match_path.name.startswith(".") or not _is_image_name(match_path):
                    found.skip(match_path)
                else:
                    add(Source(match_path, Path(match_path.name), discovered=True))
        else:
            found.problems.append((name, "no such file or folder"))
    return found


@dataclass(frozen=True)
class Job:
    """One image to denoise: where it comes from and where it goes (None: stdin / stdout)."""

    source: Path | None
    target: Path | None
    format: str | None = None  # the output format, when it is not the target's extension
    #: The source's path relative to its input folder (to find a reference by the same path).
    relative: Path | None = None
    #: For a report: the clean reference image, and whether to make pictures of this image.
    reference: Path | None = None
    pictures: bool = False
    #: For stdin (``source`` None): the file a video clip read from stdin was copied to, so
    #: that it streams from there (:func:`tvdenoise.io.video.spool_clip`); None otherwise.
    spooled: Path | None = None

    @property
    def label(self) -> str:
        return STDIO if self.source is None else os.fspath(self.source)

    @property
    def input_path(self) -> Path | None:
        """The file to read: the source, or where stdin was spooled (None: stdin's bytes)."""
        return self.source if self.source is not None else self.spooled

    @property
    def target_label(self) -> str:
        return STDIO if self.target is None else os.fspath(self.target)


def output_name(relative: Path, *, suffix: str, template: str | None, format: str | None) -> str:
    """The output file name of an input: ``<stem><suffix><ext>`` or the ``template``.

    Template fields: {stem} and {name} of the input, {suffix} the output extension with its
    dot (as in pathlib), {ext} the same without the dot, {tag} the --suffix text.
    """
    extension = relative.suffix
    if format is not None and FORMAT_EXTENSIONS.get(format) != extension.lower():
        spec = formats.by_extension(extension)
        if (extension.lower().lstrip(".") if spec is None else spec.option) != format:
            extension = FORMAT_EXTENSIONS.get(format, "." + format)
    if template is None:
        return f"{relative.stem}{suffix}{extension}"
    return template.format(
        stem=relative.stem,
        name=relative.name,
        suffix=extension,
        ext=extension.lstrip("."),
        tag=suffix,
    )


def plan(
    sources: list[Source],
    output: str | None,
    *,
    suffix: str = "_denoised",
    template: str | None = None,
    format: str | None = None,
    folder_inputs: bool = False,
) -> tuple[list[Job], int]:
    """Map sources to jobs; return the jobs and how many discovered files were left out
    because they are the output of another input (an earlier run's results).

    ``output`` is None (beside each input; stdin goes to stdout), ``"-"`` (stdout, one input),
    a folder (an existing folder, a name ending in a separator, or any name when there are
    several inputs or ``folder_inputs``; the input tree is mirrored under it) or a file (one
    input). Raises InvalidParameterError for a plan that cannot be right: two inputs to one
    output, an output over an input, several inputs to one file, stdin to a folder.
    """
    to_stdout = output == STDIO
    out_dir: Path | None = None
    out_file: Path | None = None
    if output is not None and not to_stdout:
        out = Path(output)
        if (
            out.is_dir()
            or output.endswith(("/", os.sep))
            or (not out.suffix and (len(sources) > 1 or folder_inputs))
        ):
            out_dir = out
        elif len(sources) > 1 or folder_inputs:
            raise InvalidParameterError(
                f"-o {output}: several inputs need an output folder, not a file"
            )
        else:
            out_file = out
    if to_stdout and (len(sources) != 1 or folder_inputs):
        raise InvalidParameterError("-o -: writing to stdout needs exactly one input image")

    jobs: list[Job] = []
    for source in sources:
        target: Path | None
        if source.path is None:
            if out_dir is not None:
                raise InvalidParameterError(
                    "-: an image read from stdin needs -o FILE or -o - (or no -o: stdout)"
                )
            target = out_file
        elif to_stdout:
            target = None
        elif out_file is not None:
            target = out_file
        else:
            name = output_name(source.relative, suffix=suffix, template=template, format=format)
            if out_dir is not None:
                target = out_dir / source.relative.parent / name
            else:
                target = source.path.parent / name
        jobs.append(Job(source.path, target, format, source.relative))

    # Files found in folders that another input would write are an earlier run's outputs.
    targets = {job.target.resolve() for job in jobs if job.target is not None}
    kept = [
        (source, job)
        for source, job in zip(sources, jobs, strict=True)
        if not (source.discovered and source.path is not None and source.path.resolve() in targets)
    ]
    earlier_outputs = len(jobs) - len(kept)

    seen: dict[Path, Job] = {}
    inputs = {source.path.resolve(): source for source, _ in kept if source.path is not None}
    for _, job in kept:
        if job.target is None:
            continue
        key = job.target.resolve()
        if key in seen:
            raise InvalidParameterError(
                f"{seen[key].label} and {job.label} would both be written to {job.target}"
            )
        if key in inputs:
            victim = inputs[key].label
            what = "the input" if victim == job.label else f"the input {victim}"
            raise InvalidParameterError(f"{job.label}: output would overwrite {what}")
        seen[key] = job
    return [job for _, job in kept], earlier_outputs


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` (1 <= K <= N) as the pair (K, N)."""
    try:
        k_text, n_text = text.split("/")
        k, n = int(k_text), int(n_text)
    except ValueError:
        raise InvalidParameterError(
            f"--shard must be K/N with whole numbers, 1 <= K <= N (e.g. 2/8); got {text!r}"
        ) from None
    if not (n >= 1 and 1 <= k <= n):
        raise InvalidParameterError(f"--shard K/N needs 1 <= K <= N, got {text!r}")
    return k, n


def shard(jobs: list[Job], k: int, n: int) -> list[Job]:
    """Shard ``k`` of ``n`` (1-based): every n-th job of the sorted plan, starting at the k-th.

    Every machine that runs the same command on the same files computes the same plan, so the
    shards are disjoint, their union is the whole plan, and their sizes differ by at most one.
    """
    return jobs[k - 1 :: n]
