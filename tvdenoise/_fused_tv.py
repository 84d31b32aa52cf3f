"""The fused path of :func:`tvdenoise.total_variation`: a C kernel for the value and its gradient.

TV and its gradient are stencils: read x once, write the gradient once. Written with PyTorch
operations they take tens of elementwise passes (differences, squares, sums, the power, then
the same again in reverse for autograd, each holding a full-size temporary). ``_tv_kernel.c``
computes the value in one sweep over x (:func:`value`, when no gradient is wanted), or the
value and the gradient together in one sweep (read x, write the gradient) and no temporaries.

:class:`FusedTotalVariation` is the ``torch.autograd.Function``; its gradient is the analytic
(sub)gradient (zero where a magnitude is 0, as :func:`tvdenoise.ops.safe_power` defines it).
Its forward computes the gradient of the output's sum along with the value and keeps it (one
tensor of the input's size, the memory the gradient takes anyway); backward scales it by
``grad_output`` in place (nothing at all when ``grad_output`` is 1, as for ``loss.backward()``
on the scalar that :class:`tvdenoise.TVLoss` returns) and hands that tensor over, so a forward
and backward cost one sweep. The per-pixel map (``reduction="none"``) has a gradient that
depends on every value of ``grad_output``: its backward is a second sweep, as is a second
backward of the same graph (``retain_graph=True``). A backward that itself records a graph
(``create_graph=True``, for double backward) is computed by the PyTorch path on the saved
input instead, so higher derivatives stay exact.

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

__all__ = ["FusedTotalVariation", "Options", "kernel", "usable", "value"]

SOURCE = Path(__file__).with_name("_tv_kernel.c")
#: The file SOURCE includes.
INCLUDES = (Path(__file__).with_name("_tv_runs.c"),)
_KINDS = {"isotropic": 0, "anisotropic": 1, "symmetric": 2}
#: No trapping maths: lets the compiler vectorise the guarded divisions and roots (the kernel
#: never relies on floating-point exceptions).
_FLAGS = ("-fno-trapping-math",)
#: Below this many values one thread is faster than starting a team.
_PARALLEL_MIN = 1 << 15


class Options(NamedTuple):
    """What :func:`tvdenoise.total_variation` was asked for (already validated), with the
    factor and the combination over the batch that :class:`tvdenoise.TVLoss` adds."""

    beta: float
    tv: str
    color: str
    eps: float
    reduction: str
    spacing: tuple[float, ...] | None
    #: Factor on every term.
    weight: float = 1.0
    #: "none": one value per sample ``(N,)``; "sum" or "mean" over the samples: a scalar.
    #: Ignored for ``reduction="none"``.
    batch_reduction: str = "none"


class _Kernel:
    def __init__(self, library: ctypes.CDLL) -> None:
        p, n, i, d = ctypes.c_void_p, ctypes.c_long, ctypes.c_int, ctypes.c_double
        self.value: dict[torch.dtype, Any] = {}
        self.gradient: dict[torch.dtype, Any] = {}
        for dtype, suffix in ((torch.float32, "f32"), (torch.float64, "f64")):
            value = getattr(library, f"tv_value_{suffix}")
            value.restype = None
            # x, images, channels, slabs, rows, width, nd, kind, inv_h, beta, eps, scale,
            # dir_weight, skip_last, out, group, map, threads
            value.argtypes = [p, n, n, n, n, n, i, i, p, d, d, d, p, i, p, n, p, i]
            gradient = getattr(library, f"tv_gradient_{suffix}")
            gradient.restype = None
            # x, images, channels, slabs, rows, width, nd, kind, inv_h, beta, eps, scale,
            # dir_weight, skip_last, out, group, image_weight, gmap, grad, threads
            gradient.argtypes = [p, n, n, n, n, n, i, i, p, d, d, d, p, i, p, n, p, p, p, i]
            self.value[dtype] = value
            self.gradient[dtype] = gradient


@functools.cache
def kernel() -> _Kernel | None:
    """The compiled TV kernel, compiling it on first use; None where it cannot be had."""
    built = native.build(SOURCE, "tv_kernel", _FLAGS, isa=True, includes=INCLUDES)
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
    #: The arguments after x that tv_value and tv_gradient share: the layout, the kind, the
    #: weights (the ctypes arrays live as long as the plan) and skip_last.
    arguments: tuple[Any, ...]
    #: The shape of the output for reductions "sum" and "mean": () or (N,); and how many
    #: consecutive images the kernel adds into each of its values.
    shape: tuple[int, ...]
    group: int


def direction_counts(values: int, spatial: Sequence[int]) -> list[int]:
    """The number of differences along each spatial axis among ``values`` values of a sample
    (the boundary slice left out, at least 1): what ``reduction="mean"`` divides each
    direction's anisotropic sum by."""
    return [max(values * (n - 1) // n, 1) for n in spatial]


@functools.lru_cache(maxsize=256)
def _plan(shape: tuple[int, ...], options: Options) -> _Plan:
    """The kernel's arguments for a batch of this shape: computed once per shape and options
    (a training loop calls with the same ones every step)."""
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
    scale = TV_STENCIL_WEIGHT[options.tv] * options.weight
    if options.batch_reduction == "mean" and options.reduction != "none":
        scale /= n
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
    arguments = (
        images,
        channels,
        *dims,
        nd,
        _KINDS[options.tv],
        _doubles(inv_h),
        options.beta,
        options.eps,
        scale,
        _doubles(dir_weight),
        int(skip_last),
    )
    out_shape: tuple[int, ...] = () if options.batch_reduction != "none" else (n,)
    return _Plan(images, arguments, out_shape, images // n if out_shape else images)


def _doubles(values: tuple[float, ...]) -> Any:
    return (ctypes.c_double * len(values))(*values)


def _threads(u: torch.Tensor) -> int:
    return torch.get_num_threads() if u.numel() >= _PARALLEL_MIN else 1


def value(u: torch.Tensor, options: Options) -> torch.Tensor:
    """The output of :class:`FusedTotalVariation` by the value sweep alone, with no graph."""
    found = kernel()
    assert found is not None
    plan = _plan(u.shape, options)
    x = u.contiguous()
    if options.reduction == "none":
        out = torch.empty((plan.images, 1, *u.shape[2:]), dtype=u.dtype)
        found.value[u.dtype](x.data_ptr(), *plan.arguments, None, 1, out.data_ptr(), _threads(x))
        n, c = u.shape[:2]  # channelwise: each channel was an image of one channel
        return out.view(n, c if options.color == "channelwise" else 1, *u.shape[2:])
    out = torch.empty(plan.shape, dtype=u.dtype)
    found.value[u.dtype](
        x.data_ptr(), *plan.arguments, out.data_ptr(), plan.group, None, _threads(x)
    )
    return out


def _sweep(
    u: torch.Tensor,
    options: Options,
    image_weight: torch.Tensor | None,
    gmap: torch.Tensor | None,
    out: torch.Tensor | None,
) -> torch.Tensor:
    """One tv_gradient sweep: the gradient of sum_n image_weight[n] * term sum (all 1 when
    None) or of sum_p gmap[p] term(p); the output into ``out`` when given."""
    found = kernel()
    assert found is not None
    plan = _plan(u.shape, options)
    x = u.contiguous()
    grad = torch.empty_like(x)
    found.gradient[u.dtype](
        x.data_ptr(),
        *plan.arguments,
        None if out is None else out.data_ptr(),
        plan.group,
        None if image_weight is None else image_weight.data_ptr(),
        None if gmap is None else gmap.data_ptr(),
        grad.data_ptr(),
        _threads(x),
    )
    return grad


def value_and_gradient(u: torch.Tensor, options: Options) -> tuple[torch.Tensor, torch.Tensor]:
    """The output for reductions "sum" and "mean" and the gradient of its sum, in one sweep."""
    out = torch.empty(_plan(u.shape, options).shape, dtype=u.dtype)
    return out, _sweep(u, options, None, None, out)


def _gradient(u: torch.Tensor, options: Options, grad_output: torch.Tensor) -> torch.Tensor:
    """The gradient sweep alone: the backward of an output whose gradient was not kept."""
    if options.reduction == "none":
        return _sweep(u, options, None, grad_output.to(u.dtype).contiguous(), None)
    images = _plan(u.shape, options).images
    image_weight = grad_output.to(torch.float64)
    if image_weight.dim() == 0:  # reduced over the batch
        image_weight = image_weight.expand(images)
    elif options.color == "channelwise":
        image_weight = image_weight.repeat_interleave(u.shape[1])
    return _sweep(u, options, image_weight.contiguous(), None, None)


def _scaled(gradient: torch.Tensor, grad_output: torch.Tensor) -> torch.Tensor:
    """The kept gradient of the output's sum times ``grad_output`` (per sample), in place."""
    if grad_output.dim() == 0:
        if grad_output.item() != 1.0:
            gradient.mul_(grad_output)
    elif not bool(grad_output.eq(1.0).all()):
        gradient.view(grad_output.shape[0], -1).mul_(grad_output.view(-1, 1))
    return gradient


class FusedTotalVariation(torch.autograd.Function):
    """``total_variation`` of a batch ``u`` (``(N, C, *spatial)``) by the fused kernel.

    Returns the per-sample values ``(N,)`` (a scalar when ``options.batch_reduction`` combines
    them), or for ``reduction="none"`` the term map ``(N, C or 1, *spatial)``; ``reference`` is
    the PyTorch path giving the same result, used for backward passes that record a graph.
    Call it only where a gradient is wanted (grad mode on, ``u`` requiring grad): its forward
    computes the gradient too; :func:`value` is the output alone.
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
        ctx.gradient = None
        if options.reduction == "none":
            return value(u, options)
        out, ctx.gradient = value_and_gradient(u, options)
        return out

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        (u,) = ctx.saved_tensors
        # Handed over, not kept: autograd then takes the tensor itself as u's gradient, and a
        # second backward of the graph (retain_graph=True) sweeps again.
        gradient, ctx.gradient = ctx.gradient, None
        if not ctx.needs_input_grad[0]:
            return None, None, None
        if torch.is_grad_enabled():
            # create_graph=True: differentiate the PyTorch path so the result has a graph.
            with torch.enable_grad():
                out = ctx.reference(u, ctx.options)
                (grad,) = torch.autograd.grad(out, u, grad_output, create_graph=True)
            return grad, None, None
        if gradient is None:
            return _gradient(u.detach(), ctx.options, grad_output), None, None
        return _scaled(gradient, grad_output), None, None
