"""The fused C kernels of the ROF, nonlocal TV and TGV solvers, compiled and cached by
:mod:`tvdenoise.native`.

The kernels (``_rof_kernel.c``, ``_nonlocal_kernel.c`` and ``_tgv_kernel.c`` beside this
module) are plain C99 with OpenMP pragmas. Where there is no compiler, the compilation fails,
or ``TVDENOISE_NO_NATIVE=1`` is set, :func:`load`, :func:`load_nonlocal` and :func:`load_tgv`
return None and the solvers use their PyTorch operations instead (same algorithm, more memory
passes).
"""

from __future__ import annotations

import ctypes
import functools
from pathlib import Path
from typing import Any

from .. import native as _native
from ..native import cache_dir

__all__ = [
    "NativeKernel",
    "NonlocalKernel",
    "TgvKernel",
    "cache_dir",
    "load",
    "load_nonlocal",
    "load_tgv",
]

SOURCE = Path(__file__).with_name("_rof_kernel.c")
NONLOCAL_SOURCE = Path(__file__).with_name("_nonlocal_kernel.c")


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
            wavefront = getattr(library, f"rof_cp_wavefront_{suffix}")
            wavefront.restype = None
            wavefront.argtypes = [*iterations.argtypes, size]
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


def _compiler() -> str | None:
    return _native.compiler()


def _build() -> NativeKernel | None:
    built = _native.build(SOURCE, "rof_kernel", ("-fno-trapping-math",), isa=True)
    if built is None:
        return None
    return NativeKernel(built.library, built.path, built.compile_seconds)


@functools.cache
def load() -> NativeKernel | None:
    """The compiled kernel, compiling it on first use; None where it cannot be had."""
    return _build()


class NonlocalKernel:
    """The loaded nonlocal TV kernel (``_nonlocal_kernel.c``): ctypes functions for float32
    and float64, and how it was obtained."""

    def __init__(self, library: ctypes.CDLL, path: Path, compile_seconds: float) -> None:
        self.library = library
        self.path = path
        #: Seconds spent compiling in this process (0.0 when the cached library was used).
        self.compile_seconds = compile_seconds
        pointer, size, integer = ctypes.c_void_p, ctypes.c_long, ctypes.c_int
        for suffix in ("f32", "f64"):
            iterations = getattr(library, f"nl_cp_iterations_{suffix}")
            iterations.restype = None
            iterations.argtypes = [
                *(pointer,) * 10,
                *(size,) * 4,
                integer,
                ctypes.c_double,
                pointer,
                ctypes.c_double,
                size,
                integer,
            ]
            sweep = getattr(library, f"nl_cp_sweep_{suffix}")
            sweep.restype = None
            sweep.argtypes = [
                *(pointer,) * 7,
                *(size,) * 6,
                integer,
                ctypes.c_double,
                pointer,
                ctypes.c_double,
                size,
            ]
            divergence = getattr(library, f"nl_divergence_{suffix}")
            divergence.restype = None
            divergence.argtypes = [*(pointer,) * 6, *(size,) * 4, integer]
            measure = getattr(library, f"nl_measure_{suffix}")
            measure.restype = None
            measure.argtypes = [*(pointer,) * 4, *(size,) * 4, integer, pointer, integer]

    def function(self, name: str, double: bool) -> Any:
        """The ctypes function ``name`` for float64 (``double``) or float32 tensors."""
        return getattr(self.library, f"{name}_{'f64' if double else 'f32'}")


@functools.cache
def load_nonlocal() -> NonlocalKernel | None:
    """The compiled nonlocal TV kernel, compiling it on first use; None where it cannot be
    had."""
    built = _native.build(NONLOCAL_SOURCE, "nonlocal_kernel", ("-fno-trapping-math",), isa=True)
    if built is None:
        return None
    return NonlocalKernel(built.library, built.path, built.compile_seconds)


TGV_SOURCE = Path(__file__).with_name("_tgv_kernel.c")


class TgvKernel:
    """The loaded TGV kernel (``_tgv_kernel.c``): ctypes functions for float32 and float64,
    and how it was obtained."""

    def __init__(self, library: ctypes.CDLL, path: Path, compile_seconds: float) -> None:
        self.library = library
        self.path = path
        #: Seconds spent compiling in this process (0.0 when the cached library was used).
        self.compile_seconds = compile_seconds
        pointer, size, integer, real = ctypes.c_void_p, ctypes.c_long, ctypes.c_int, ctypes.c_double
        for suffix in ("f32", "f64"):
            iterations = getattr(library, f"tgv_cp_iterations_{suffix}")
            iterations.restype = None
            iterations.argtypes = [
                *(pointer,) * 7,
                *(size,) * 4,
                integer,
                real,
                real,
                pointer,
                real,
                size,
                integer,
            ]
        measure = library.tgv_measure_f64
        measure.restype = None
        measure.argtypes = [*(pointer,) * 7, *(size,) * 4, integer, real, real, size, pointer]

    def function(self, name: str, double: bool) -> Any:
        """The ctypes function ``name`` for float64 (``double``) or float32 tensors."""
        return getattr(self.library, f"{name}_{'f64' if double else 'f32'}")


@functools.cache
def load_tgv() -> TgvKernel | None:
    """The compiled TGV kernel, compiling it on first use; None where it cannot be had."""
    built = _native.build(TGV_SOURCE, "tgv_kernel", ("-fno-trapping-math",), isa=True)
    if built is None:
        return None
    return TgvKernel(built.library, built.path, built.compile_seconds)
