"""The fused path of :func:`tvdenoise.total_variation`: a C kernel for the value and its gradient.

TV and its gradient are stencils: read x once, write the gradient once. Written with PyTorch
operations they take tens of elementwise passes (differences, squares, sums, the power, then
the same again in reverse for autograd, each holding a full-size temporary). ``_tv_kernel.c``
computes the value in one sweep over x and the gradient in one more, so a forward and backward
cost about three passes over the image (read, read, write) and no temporaries.

:class:`FusedTotalVariation` is the ``torch.autograd.Function``; its backward is the analytic
(sub)gradient (zero where a magnitude is 0, as :func:`tvdenoise.ops.safe_power` defines it).
A backward that itself records a graph (``create_graph=True``, for double backward) is
computed by the PyTorch path on the saved input instead, so higher derivatives stay exact.

Used for float32 and float64 CPU tensors where the kernel compiles (see :mod:`tvdenoise.native`);
everything else (other devices, half precision, no compiler, ``TVDENOISE_NO_NATIVE=1``) takes
the PyTorch path, which gives the same values.
"""

from __future__ import annotations

import ctypes
import functools
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch

from . import native
from .ops import TV_STENCIL_WEIGHT

__all__ = ["FusedTotalVariation", "Options", "kernel", "usable"]

SOURCE = Path(__file__).with_name("_tv_kernel.c")
_KINDS = {"isotropic": 0, "anisotropic": 1, "symmetric": 2}
#: No trapping maths: lets the compiler vectorise the guarded divisions and roots (the kernel
#: never relies on floating-point exceptions).
_FLAGS = ("-fno-trapping-math",)
#: Below this many values one thread is faster than starting a team.
_PARALLEL_MIN = 1 << 15


class Options(NamedTuple):
    """What :func:`tvdenoise.total_variation` was asked for (already validated)."""

    beta: float
    tv: str
    color: str
    eps: float
    reduction: str
    spacing: tuple[float, ...] | None


class _Kernel:
    def __init__(self, library: ctypes.CDLL) -> None:
        p, n, i, d = ctypes.c_void_p, ctypes.c_long, ctypes.c_int, ctypes.c_double
        self.value: dict[torch.dtype, Any] = {}
        self.gradient: dict[torch.dtype, Any] = {}
        for dtype, suffix in ((torch.float32, "f32"), (torch.float64, "f64")):
            value = getattr(library, f"tv_value_{suffix}")
            value.restype = None
            # x, images, channels, slabs, rows, width, nd, kind, inv_h, beta, eps, scale,
            # dir_weight, skip_last, out, map, threads
            value.argtypes = [p, n, n, n, n, n, i, i, p, d, d, d, p, i, p, p, i]
            gradient = getattr(library, f"tv_gradient_{suffix}")
            gradient.restype = None
            # x, images, channels, slabs, rows, width, nd, kind, inv_h, beta, eps, scale,
            # dir_weight, image_weight, gmap, grad, threads
            gradient.argtypes = [p, n, n, n, n, n, i, i, p, d, d, d, p, p, p, p, i]
            self.value[dtype] = value
            self.gradient[dtype] = gradient


@functools.cache
def kernel() -> _Kernel | None:
    """The compiled TV kernel, compiling it on first use; None where it cannot be had."""
    built = native.build(SOURCE, "tv_kernel", _FLAGS, isa=True)
    return None if built is None else _Kernel(built.library)


def usable(u: torch.Tensor) -> bool:
    """Whether the fused path can take the batch ``u`` (``(N, C, *spatial)``, 2 or 3 axes)."""
    return (
        u.device.type == "cpu"
        and u.dtype in (torch.float32, torch.float64)
        and u.numel() > 0
        and kernel() is not None
    )


class _Plan(NamedTuple):
    images: int
    channels: int
    dims: tuple[int, int, int]  # slabs, rows, width
    nd: int
    inv_h: tuple[float, float, float]
    scale: float
    dir_weight: tuple[float, float, float]
    skip_last: bool


def direction_counts(values: int, spatial: Sequence[int]) -> list[int]:
    """The number of differences along each spatial axis among ``values`` values of a sample
    (the boundary slice left out, at least 1): what ``reduction="mean"`` divides each
    direction's anisotropic sum by."""
    return [max(values * (n - 1) // n, 1) for n in spatial]


def _plan(shape: torch.Size, options: Options) -> _Plan:
    n, c, *spatial = shape
    channelwise = options.color == "channelwise"
    images, channels = (n * c, 1) if channelwise else (n, c)
    spacing = options.spacing or (1.0,) * len(spatial)
    if len(spatial) == 2:
        dims, nd = (spatial[0], 1, spatial[1]), 2
        inv_h = (1.0 / spacing[0], 1.0, 1.0 / spacing[1])
    else:
        dims, nd = (spatial[0], spatial[1], spatial[2]), 3
        inv_h = (1.0 / spacing[0], 1.0 / spacing[1], 1.0 / spacing[2])
    scale = TV_STENCIL_WEIGHT[options.tv]
    dir_weight, skip_last = (1.0, 1.0, 1.0), False
    if options.reduction == "mean":
        per_sample_values = (c if channelwise else 1) * math.prod(spatial)
        if options.tv == "anisotropic":
            counts = direction_counts(per_sample_values, spatial)
            if nd == 2:
                counts.insert(1, 1)
            dir_weight = (1.0 / counts[0], 1.0 / counts[1], 1.0 / counts[2])
            skip_last = True
        else:
            scale /= per_sample_values
    return _Plan(images, channels, dims, nd, inv_h, scale, dir_weight, skip_last)


def _doubles(values: tuple[float, ...]) -> Any:
    return (ctypes.c_double * len(values))(*values)


def _common_arguments(x: torch.Tensor, plan: _Plan, options: Options) -> tuple[Any, ...]:
    """The arguments tv_value and tv_gradient share: x, its layout, the kind and the weights."""
    return (
        x.data_ptr(),
        plan.images,
        plan.channels,
        *plan.dims,
        plan.nd,
        _KINDS[options.tv],
        _doubles(plan.inv_h),
        options.beta,
        options.eps,
        plan.scale,
        _doubles(plan.dir_weight),
    )


def _threads(u: torch.Tensor) -> int:
    return torch.get_num_threads() if u.numel() >= _PARALLEL_MIN else 1


def _value(u: torch.Tensor, options: Options) -> torch.Tensor:
    found = kernel()
    assert found is not None
    plan = _plan(u.shape, options)
    x = u.contiguous()
    per_image = torch.empty(plan.images, dtype=torch.float64)
    terms = None
    if options.reduction == "none":
        terms = torch.empty((plan.images, 1, *u.shape[2:]), dtype=u.dtype)
    found.value[u.dtype](
        *_common_arguments(x, plan, options),
        int(plan.skip_last),
        per_image.data_ptr(),
        None if terms is None else terms.data_ptr(),
        _threads(x),
    )
    n, c = u.shape[:2]
    if terms is not None:  # channelwise: each channel was an image of one channel
        return terms.view(n, c if options.color == "channelwise" else 1, *u.shape[2:])
    per_sample = per_image.view(n, -1).sum(dim=1) if options.color == "channelwise" else per_image
    return per_sample.to(u.dtype)


def _gradient(u: torch.Tensor, options: Options, grad_output: torch.Tensor) -> torch.Tensor:
    found = kernel()
    assert found is not None
    plan = _plan(u.shape, options)
    x = u.contiguous()
    c = u.shape[1]
    gmap = None
    if options.reduction == "none":
        gmap = grad_output.to(u.dtype).contiguous()
        image_weight = torch.ones(plan.images, dtype=torch.float64)
    else:
        image_weight = grad_output.to(torch.float64)
        if options.color == "channelwise":
            image_weight = image_weight.repeat_interleave(c)
        image_weight = image_weight.contiguous()
    grad = torch.empty_like(x)
    found.gradient[u.dtype](
        *_common_arguments(x, plan, options),
        image_weight.data_ptr(),
        None if gmap is None else gmap.data_ptr(),
        grad.data_ptr(),
        _threads(x),
    )
    return grad


class FusedTotalVariation(torch.autograd.Function):
    """``total_variation`` of a batch ``u`` (``(N, C, *spatial)``) by the fused kernel.

    Returns the per-sample values ``(N,)``, or for ``reduction="none"`` the term map
    ``(N, C or 1, *spatial)``; ``reference`` is the PyTorch path giving the same result, used
    for backward passes that record a graph.
    """

    @staticmethod
    def forward(
        ctx: Any,
        u: torch.Tensor,
        options: Options,
        reference: Callable[[torch.Tensor, Options], torch.Tensor],
    ) -> torch.Tensor:
        ctx.options = options
        ctx.reference = reference
        ctx.save_for_backward(u)
        return _value(u, options)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        (u,) = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None
        if torch.is_grad_enabled():
            # create_graph=True: differentiate the PyTorch path so the result has a graph.
            with torch.enable_grad():
                value = ctx.reference(u, ctx.options)
                (grad,) = torch.autograd.grad(value, u, grad_output, create_graph=True)
            return grad, None, None
        return _gradient(u.detach(), ctx.options, grad_output), None, None
