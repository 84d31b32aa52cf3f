"""The fused C kernel of the ROF solver: compiled once per machine, cached, loaded with ctypes.

The kernel (``_rof_kernel.c`` beside this module) is plain C99 with OpenMP pragmas; it needs no
Python or PyTorch headers, so a C compiler (``$CC``, else ``cc`` or ``gcc``) is the only
requirement, and only at the first use on a machine. Compilation takes well under a second;
the shared library (about 30 kB) is cached in ``$TVDENOISE_CACHE_DIR``, else
``$XDG_CACHE_HOME/tvdenoise``, else ``~/.cache/tvdenoise``, under a name that hashes the source
and the compiler command, and is reused by every later process.

Where there is no compiler, the compilation fails, or ``TVDENOISE_NO_NATIVE=1`` is set,
:func:`load` returns None and the solver uses its PyTorch operations instead (same algorithm,
more memory passes).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["NativeKernel", "cache_dir", "load"]

SOURCE = Path(__file__).with_name("_rof_kernel.c")
_FLAGS = ("-O3", "-fno-math-errno", "-std=c99", "-shared", "-fPIC")
_OPENMP = ("-fopenmp",)


class NativeKernel:
    """The loaded kernel: ctypes functions for float32 and float64, and how it was obtained."""

    def __init__(self, library: ctypes.CDLL, path: Path, compile_seconds: float) -> None:
        self.library = library
        self.path = path
        #: Seconds spent compiling in this process (0.0 when the cached library was used).
        self.compile_seconds = compile_seconds
        pointer, size, double_pointer = ctypes.c_void_p, ctypes.c_long, ctypes.c_void_p
        for suffix in ("f32", "f64"):
            iterations = getattr(library, f"rof_cp_iterations_{suffix}")
            iterations.restype = None
            iterations.argtypes = [
                *(pointer,) * 4,
                *(size,) * 4,
                ctypes.c_int,
                ctypes.c_double,
                double_pointer,
                ctypes.c_double,
                size,
                ctypes.c_int,
            ]
            measure = getattr(library, f"rof_measure_{suffix}")
            measure.restype = None
            measure.argtypes = [
                *(pointer,) * 4,
                *(size,) * 4,
                ctypes.c_int,
                ctypes.c_double,
                double_pointer,
                ctypes.c_int,
            ]

    def function(self, name: str, double: bool) -> Any:
        """The ctypes function ``name`` for float64 (``double``) or float32 tensors."""
        return getattr(self.library, f"{name}_{'f64' if double else 'f32'}")


def cache_dir() -> Path:
    """Where the compiled kernel is kept (see the module docstring)."""
    explicit = os.environ.get("TVDENOISE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tvdenoise"


def _compiler() -> str | None:
    named = os.environ.get("CC")
    if named:
        return shutil.which(named)
    return shutil.which("cc") or shutil.which("gcc")


def _compile(compiler: str, flags: tuple[str, ...], target: Path) -> bool:
    target.parent.mkdir(parents=True, exist_ok=True)
    # Compile to a private name, then rename: concurrent processes never see half a file.
    handle, temporary = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(handle)
    try:
        done = subprocess.run(
            [compiler, *flags, str(SOURCE), "-o", temporary, "-lm"],
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


def _build() -> NativeKernel | None:
    if os.environ.get("TVDENOISE_NO_NATIVE", "") not in ("", "0"):
        return None
    if not sys.platform.startswith(("linux", "darwin", "freebsd")):
        return None
    compiler = _compiler()
    if compiler is None:
        return None
    source = SOURCE.read_bytes()
    started = time.perf_counter()
    for flags in (_FLAGS + _OPENMP, _FLAGS):  # OpenMP where the compiler has it
        key = hashlib.sha256(source + repr((compiler, flags)).encode()).hexdigest()[:16]
        target = cache_dir() / f"rof_kernel_{key}.so"
        compiled = False
        if not target.exists():
            try:
                compiled = _compile(compiler, flags, target)
            except OSError:  # cache directory not writable
                return None
            if not compiled:
                continue
        try:
            library = ctypes.CDLL(str(target))
        except OSError:
            continue
        seconds = time.perf_counter() - started if compiled else 0.0
        return NativeKernel(library, target, seconds)
    return None


@functools.cache
def load() -> NativeKernel | None:
    """The compiled kernel, compiling it on first use; None where it cannot be had."""
    return _build()
