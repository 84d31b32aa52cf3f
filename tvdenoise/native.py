"""Compiling and loading the project's C kernels: once per machine, cached, loaded with ctypes.

Each kernel is one plain C99 file with OpenMP pragmas beside the module that uses it
(``solvers/_rof_kernel.c``, ``_tv_kernel.c``); it needs no Python or PyTorch headers, so a C
compiler (``$CC``, else ``cc`` or ``gcc``) is the only requirement, and only at the first use
on a machine. Compilation takes well under a second; the shared library is cached in
``$TVDENOISE_CACHE_DIR``, else ``$XDG_CACHE_HOME/tvdenoise``, else ``~/.cache/tvdenoise``,
under a name that hashes the source and the compiler command, and is reused by every later
process.

Where there is no compiler, the compilation fails, or ``TVDENOISE_NO_NATIVE=1`` is set,
:func:`build` returns None and the caller uses PyTorch operations instead.

This module sits below everything else in the package: it imports nothing from it.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Library", "build", "cache_dir", "compiler", "isa_levels", "usable_cores"]

_FLAGS = ("-O3", "-fno-math-errno", "-std=c99", "-shared", "-fPIC")
_OPENMP = ("-fopenmp",)
#: x86-64 micro-architecture levels and the /proc/cpuinfo flags each needs (psABI levels).
_X86_LEVELS = (
    ("x86-64-v4", {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}),
    ("x86-64-v3", {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"}),
)


@dataclass(frozen=True)
class Library:
    """A loaded kernel library and how it was obtained."""

    library: ctypes.CDLL
    path: Path
    #: Seconds spent compiling in this process (0.0 when the cached library was used).
    compile_seconds: float


def usable_cores() -> int:
    """CPU cores this process may run on (the affinity mask, which SLURM and taskset set)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def cache_dir() -> Path:
    """Where compiled kernels are kept (see the module docstring)."""
    explicit = os.environ.get("TVDENOISE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tvdenoise"


def compiler() -> str | None:
    """The C compiler to use: ``$CC`` when set (None if it is not found), else cc or gcc."""
    named = os.environ.get("CC")
    if named:
        return shutil.which(named)
    return shutil.which("cc") or shutil.which("gcc")


@functools.cache
def isa_levels() -> tuple[str, ...]:
    """The x86-64 levels this CPU runs, best first (none elsewhere, or off Linux).

    A kernel built with ``-march=<level>`` uses the wide vector units (AVX2, AVX-512) of the
    machine it runs on; the level is part of the cached file's name, so a cache shared by
    machines of different kinds never hands one the other's build.
    """
    if platform.machine() not in ("x86_64", "AMD64") or not sys.platform.startswith("linux"):
        return ()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    flags = set(line.partition(":")[2].split())
    return tuple(level for level, needs in _X86_LEVELS if needs <= flags)


def _compile(command: str, flags: tuple[str, ...], source: Path, target: Path) -> bool:
    target.parent.mkdir(parents=True, exist_ok=True)
    # Compile to a private name, then rename: concurrent processes never see half a file.
    handle, temporary = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(handle)
    try:
        done = subprocess.run(
            [command, *flags, str(source), "-o", temporary, "-lm"],
            capture_output=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            return False
        os.replace(temporary, target)
        return True
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def build(
    source: Path,
    stem: str,
    extra_flags: tuple[str, ...] = (),
    isa: bool = False,
    includes: tuple[Path, ...] = (),
) -> Library | None:
    """Compile ``source`` (or reuse the cached build) and load it; None where it cannot be had.

    ``stem`` names the cached file (``{stem}_{hash}.so``); ``extra_flags`` are added to the
    compiler's options; with ``isa`` the best :func:`isa_levels` the compiler accepts is
    targeted. ``includes`` are the files ``source`` includes: part of the hash, so editing
    one builds anew. OpenMP is used where the compiler has it; otherwise the kernel is built
    without it and runs on one thread.
    """
    if os.environ.get("TVDENOISE_NO_NATIVE", "") not in ("", "0"):
        return None
    if not sys.platform.startswith(("linux", "darwin", "freebsd")):
        return None
    command = compiler()
    if command is None:
        return None
    text = b"".join(path.read_bytes() for path in (source, *includes))
    started = time.perf_counter()
    levels = [(f"-march={level}",) for level in isa_levels()] if isa else []
    candidates = [
        _FLAGS + extra_flags + march + openmp for march in (*levels, ()) for openmp in (_OPENMP, ())
    ]
    for flags in candidates:
        key = hashlib.sha256(text + repr((command, flags)).encode()).hexdigest()[:16]
        target = cache_dir() / f"{stem}_{key}.so"
        compiled = False
        if not target.exists():
            try:
                compiled = _compile(command, flags, source, target)
            except OSError:  # cache directory not writable
                return None
            if not compiled:
                continue
        try:
            library = ctypes.CDLL(str(target))
        except OSError:
            continue
        seconds = time.perf_counter() - started if compiled else 0.0
        return Library(library, target, seconds)
    return None
