"""Total-variation functionals and the :class:`TVLoss` module.

For ``beta > 0`` and smoothing ``eps >= 0`` (CONVENTIONS.md, "Total variation"), with ``D``
the forward differences of :mod:`tvdenoise.ops`:

- isotropic:    ``TV(u) = sum_pixels ( |D_y u|^2 + |D_x u|^2 + eps^2 )^(beta / 2)``
- anisotropic:  ``TV(u) = sum_pixels sum_k ( |D_k u|^2 + eps^2 )^(beta / 2)``, k in {y, x}
- ``color="channelwise"`` applies the above to every channel and adds the results;
  ``color="vectorial"`` sums the squared differences over channels inside the power.
- Volumes ``(N, C, D, H, W)`` use the three differences ``D_z, D_y, D_x`` in the same way,
  each divided by its grid step when a ``spacing`` is given.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from . import _fused_tv, _validate
from .errors import InvalidParameterError
from .ops import TV_STENCIL_WEIGHT, coupled_squared_norm, gradient, safe_power

__all__ = ["BACKENDS", "TVLoss", "total_variation", "tv_map"]

#: Where :func:`total_variation` computes: the fused C kernel, PyTorch operations, or the
#: kernel where it applies.
BACKENDS = ("auto", "native", "torch")


def as_batch(x: torch.Tensor, name: str = "x", volume: bool = False) -> torch.Tensor:
    """View an image tensor as a batch ``(N, C, H, W)``, or a volume as ``(N, C, D, H, W)``.

    Images: 2-D ``(H, W)``, 3-D ``(C, H, W)`` or 4-D ``(N, C, H, W)``; a 5-D tensor is always a
    batch of volumes. With ``volume=True``: 3-D ``(D, H, W)``, 4-D ``(C, D, H, W)`` or 5-D.
    """
    if not isinstance(x, torch.Tensor):
        raise InvalidParameterError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise InvalidParameterError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    volume = volume or x.dim() == 5
    if volume:
        if x.dim() not in (3, 4, 5):
            raise InvalidParameterError(
                f"{name} as a volume must have 3 (D, H, W), 4 (C, D, H, W) or 5 (N, C, D, H, W) "
                f"dimensions, got shape {tuple(x.shape)}"
            )
        return x if x.dim() == 5 else x.reshape((1,) * (5 - x.dim()) + tuple(x.shape))
    if x.dim() not in (2, 3, 4):
        raise InvalidParameterError(
            f"{name} must have 2 (H, W), 3 (C, H, W), 4 (N, C, H, W) or 5 (N, C, D, H, W) "
            f"dimensions, got shape {tuple(x.shape)}"
        )
    # A batch is returned as it is: a reshape to its own shape would add a node to the graph.
    return x if x.dim() == 4 else x.reshape((1,) * (4 - x.dim()) + tuple(x.shape))


def tv_map(
    u: torch.Tensor,
    beta: float = 1.0,
    tv: str = "isotropic",
    color: str = "vectorial",
    eps: float = 0.0,
    spacing: tuple[float, ...] | None = None,
) -> torch.Tensor:
    """Per-term TV values of a batch ``u`` of shape ``(N, C, *spatial)`` (2 or 3 spatial axes).

    Returns the tensor of terms before any summation, shaped as
    :func:`tvdenoise.ops.coupled_squared_norm` describes (size-1 axes kept).
    """
    g = gradient(u, u.dim() - 2, spacing, symmetric=tv == "symmetric")
    s = coupled_squared_norm(g, tv, color)
    if eps > 0:
        s = s + eps * eps
    terms = safe_power(s, beta / 2.0)
    return terms * TV_STENCIL_WEIGHT[tv] if tv == "symmetric" else terms


def total_variation(
    x: torch.Tensor,
    beta: float = 1.0,
    tv: str = "isotropic",
    color: str = "vectorial",
    eps: float = 0.0,
    reduction: str = "sum",
    spacing: tuple[float, ...] | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Total variation ``TV_beta`` of an image, a volume, or a batch of them.

    Parameters
    ----------
    x : torch.Tensor
        Images ``(H, W)``, ``(C, H, W)`` or ``(N, C, H, W)``; volumes ``(N, C, D, H, W)`` (3-D
        differences); any floating dtype and device.
    beta : float
        Exponent on the gradient magnitude, > 0 (1 is classic TV, 2 is Tikhonov smoothing).
    tv : {"isotropic", "anisotropic", "symmetric"}
        Euclidean norm of the pixel gradient (forward differences), the sum of the absolute
        differences, or the mean of the Euclidean norms of the forward and the backward
        differences (isotropic TV with no bias towards one diagonal; what ``denoise`` uses
        by default).
    color : {"vectorial", "channelwise"}
        Couple the channels inside the power, or add per-channel TV.
    eps : float
        Smoothing, >= 0: each magnitude ``s`` becomes ``s + eps^2`` before the power.
    reduction : {"sum", "mean", "none"}
        ``"sum"`` adds all terms; ``"mean"`` divides, for anisotropic TV, each direction's sum by
        that direction's number of differences (times C for channelwise) and adds the
        directions; for isotropic TV it divides by the number of pixels (times C for
        channelwise); ``"none"`` returns the per-pixel map.
    spacing : tuple of float, optional
        Grid step per spatial axis, ``(dy, dx)`` or ``(dz, dy, dx)``: each difference is divided
        by its step (a z-step larger than the pixel size weighs z less). None means all 1.
    backend : {"auto", "native", "torch"}
        ``"native"``: the fused C kernel (value in one sweep over ``x``, the gradient in one
        more; CPU float32 and float64); ``"torch"``: PyTorch operations (any device and
        dtype, double backward); ``"auto"`` (default) the kernel where it applies, else
        PyTorch. Both give the same values; a backward with ``create_graph=True`` through the
        kernel is computed by the PyTorch path.

    Returns
    -------
    torch.Tensor
        A scalar for 2-D and 3-D input, shape ``(N,)`` for 4-D and 5-D input; with ``"none"``
        a map of the input's shape (the channel axis has size 1 for vectorial coupling).

    Raises
    ------
    InvalidParameterError
        For a non-float tensor, a wrong number of dimensions, or an out-of-range option.

    References
    ----------
    L. Rudin, S. Osher, E. Fatemi, "Nonlinear total variation based noise removal
    algorithms", Physica D 60 (1992).

    Examples
    --------
    >>> import torch
    >>> x = torch.arange(0, 2.5, 0.1, dtype=torch.float64).reshape(5, 5)
    >>> round(total_variation(x, tv="anisotropic").item(), 6)
    12.0
    """
    beta = _validate.positive("beta", beta)
    tv = _validate.choice("tv", tv, _validate.TV_KINDS)
    color = _validate.choice("color", color, _validate.COLOR_COUPLINGS)
    eps = _validate.non_negative("eps", eps)
    reduction = _validate.choice("reduction", reduction, _validate.REDUCTIONS)
    backend = _validate.choice("backend", backend, BACKENDS)
    return _evaluate(x, beta, tv, color, eps, reduction, spacing, backend)


def _evaluate(
    x: torch.Tensor,
    beta: float,
    tv: str,
    color: str,
    eps: float,
    reduction: str,
    spacing: tuple[float, ...] | None,
    backend: str,
    weight: float = 1.0,
    batch_reduction: str = "none",
) -> torch.Tensor:
    """``weight * total_variation(x, ...)`` with the samples of a 4-D or 5-D batch combined by
    ``batch_reduction`` (validated options): TVLoss's forward, in one call to the kernel."""
    u = as_batch(x)
    if x.dim() < 4:  # one sample: its value is the scalar to return
        batch_reduction = "sum"
    options = _fused_tv.Options(
        beta,
        tv,
        color,
        eps,
        reduction,
        _validate.spacing("spacing", spacing, u.dim() - 2),
        weight,
        batch_reduction,
    )
    fused = backend != "torch" and _fused_tv.usable(u)
    if backend == "native" and not fused:
        raise InvalidParameterError(
            "backend native needs a CPU float32/float64 tensor and a working C compiler "
            f"(got a {u.dtype} tensor on {u.device.type}"
            + (")" if _fused_tv.kernel() is not None else ", and the kernel is unavailable)")
        )
    if not fused:
        out = _total_variation_torch(u, options)
    elif torch.is_grad_enabled() and u.requires_grad:
        out = _fused_tv.FusedTotalVariation.apply(u, options, _total_variation_torch)
    else:  # no gradient wanted: the value sweep alone
        out = _fused_tv.value(u, options)
    if x.dim() >= 4 or reduction != "none":
        return out
    return out[0] if x.dim() == 3 else out[0, 0]


def _total_variation_torch(u: torch.Tensor, options: _fused_tv.Options) -> torch.Tensor:
    """The PyTorch path of :func:`_evaluate` on a batch: per-sample values ``(N,)`` (or their
    sum or mean over the batch), or the term map ``(N, C or 1, *spatial)`` for
    ``reduction="none"``, each times ``options.weight``."""
    out = _per_sample_torch(u, options)
    if options.weight != 1.0:
        out = options.weight * out
    if options.reduction == "none" or options.batch_reduction == "none":
        return out
    return out.sum() if options.batch_reduction == "sum" else out.mean()


def _per_sample_torch(u: torch.Tensor, options: _fused_tv.Options) -> torch.Tensor:
    """total_variation's values per sample, or its term map (``options.weight`` and
    ``options.batch_reduction`` left to the caller)."""
    beta, tv, color, eps, reduction, spacing = options[:6]
    spatial = tuple(u.shape[2:])
    terms = tv_map(u, beta, tv, color, eps, spacing)  # (N, C or 1, 1 or ndim or 2, *spatial)
    all_dims = tuple(range(1, terms.dim()))
    if reduction == "none":
        return terms.sum(dim=2)
    if reduction == "sum":
        return terms.sum(dim=all_dims)
    channels = u.shape[1] if color == "channelwise" else 1
    if tv != "anisotropic":
        return terms.sum(dim=all_dims) / (channels * math.prod(spatial))
    # Each direction is averaged over its own number of differences (the seeds' and kornia's
    # convention); the zero boundary slice is not counted.
    per_sample = terms.new_zeros(terms.shape[0])
    counts = _fused_tv.direction_counts(channels * math.prod(spatial), spatial)
    for k, (n, count) in enumerate(zip(spatial, counts, strict=True)):
        direction = terms.select(2, k).narrow(2 + k, 0, max(n - 1, 0))
        per_sample = per_sample + direction.sum(dim=all_dims[:-1]) / count
    return per_sample


class TVLoss(nn.Module):
    """Total variation as a loss (regulariser) module: ``weight * total_variation(x, ...)``.

    Parameters
    ----------
    beta, tv, color, eps, reduction
        As in :func:`total_variation`. ``eps`` defaults to 1e-8 so gradients are smooth.
    weight : float
        Factor applied to the result.
    spacing : tuple of float, optional
        Grid steps per spatial axis, as in :func:`total_variation`.
    backend : {"auto", "native", "torch"}
        As in :func:`total_variation`: by default the fused C kernel on CPU float32/float64.
    batch_reduction : {"mean", "sum", "none"}
        How the per-sample values of a 4-D (or 5-D volume) batch are combined: ``"mean"``
        (default) gives a scalar loss ready for ``backward()``; ``"none"`` keeps one value per
        sample.

    Examples
    --------
    The classic style-transfer TV loss (squared differences, each direction averaged over
    ``C * (H - 1) * W`` resp. ``C * H * (W - 1)``, times 2, averaged over the batch):

    >>> import torch
    >>> loss = TVLoss(beta=2, tv="anisotropic", color="channelwise", eps=0.0,
    ...               reduction="mean", weight=2.0)
    >>> x = torch.tensor([[1., 2, 3], [2, 3, 4], [3, 4, 5]]).expand(1, 2, 3, 3)
    >>> loss(x).item()
    4.0
    """

    def __init__(
        self,
        beta: float = 1.0,
        tv: str = "isotropic",
        color: str = "vectorial",
        eps: float = 1e-8,
        reduction: str = "mean",
        weight: float = 1.0,
        batch_reduction: str = "mean",
        spacing: tuple[float, ...] | None = None,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self.beta = _validate.positive("beta", beta)
        self.tv = _validate.choice("tv", tv, _validate.TV_KINDS)
        self.color = _validate.choice("color", color, _validate.COLOR_COUPLINGS)
        self.eps = _validate.non_negative("eps", eps)
        self.reduction = _validate.choice("reduction", reduction, _validate.REDUCTIONS)
        self.weight = float(weight)
        self.batch_reduction = _validate.choice(
            "batch_reduction", batch_reduction, ("mean", "sum", "none")
        )
        self.spacing = _validate.spacing("spacing", spacing)
        self.backend = _validate.choice("backend", backend, BACKENDS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Factor and batch combination inside the one call: on the fused path the scalar
        # loss comes straight from the kernel, and loss.backward() costs no further pass.
        return _evaluate(
            x,
            self.beta,
            self.tv,
            self.color,
            self.eps,
            self.reduction,
            self.spacing,
            self.backend,
            self.weight,
            self.batch_reduction,
        )

    def extra_repr(self) -> str:
        return (
            f"beta={self.beta}, tv={self.tv!r}, color={self.color!r}, eps={self.eps}, "
            f"reduction={self.reduction!r}, weight={self.weight}, "
            f"batch_reduction={self.batch_reduction!r}"
            + ("" if self.spacing is None else f", spacing={self.spacing}")
            + ("" if self.backend == "auto" else f", backend={self.backend!r}")
        )
