"""Finite differences on the pixel grid: the only place they are defined.

Conventions (CONVENTIONS.md, "Differences"): forward differences with a Neumann boundary, per
channel,

    D_k u[..., i, ...] = u[..., i + 1, ...] - u[..., i, ...]  for i < n_k - 1; 0 at i = n_k - 1,

along each of the last ``ndim`` axes (k = 0 is the first spatial axis, rows for 2-D images,
slices for 3-D volumes), divided by the grid step ``spacing[k]`` when one is given (so a
z-step larger than the pixel size weighs the z-differences less).
The divergence is the exact negative adjoint, ``<D u, p> = <u, -div p>`` for all u and p,
which is what makes the dual (Chambolle) and primal-dual (Chambolle-Pock) solvers exact.

``symmetric=True`` appends the backward differences (``u[i] - u[i - 1]`` for i > 0, 0 at
i = 0) as ``ndim`` more components: the two stencils of the ``"symmetric"`` isotropic TV,
``1/2 (|D+ u| + |D- u|)`` per pixel, whose result does not depend on which corner the forward
stencil leans to (the forward-only discretisation blurs one diagonal more than the other).
"""

from __future__ import annotations

import torch

__all__ = [
    "TV_STENCIL_WEIGHT",
    "coupled_squared_norm",
    "difference_norm_squared",
    "divergence",
    "gradient",
    "safe_power",
    "spread",
]


def _zeros_slice(x: torch.Tensor, dim: int) -> torch.Tensor:
    shape = list(x.shape)
    shape[dim] = 1
    return x.new_zeros(shape)


#: The factor on each stencil's term of TV: the symmetric kind averages its two stencils.
TV_STENCIL_WEIGHT = {"isotropic": 1.0, "anisotropic": 1.0, "symmetric": 0.5}


def difference_norm_squared(
    ndim: int = 2, spacing: tuple[float, ...] | None = None, symmetric: bool = False
) -> float:
    """A bound on ``||D||^2`` for :func:`gradient`: ``4 * sum_k 1 / spacing[k]^2``, twice that
    with the backward stencil appended (``symmetric``)."""
    stencils = 2.0 if symmetric else 1.0
    if spacing is None:
        return stencils * 4.0 * ndim
    return stencils * 4.0 * sum(1.0 / (h * h) for h in spacing)


def gradient(
    u: torch.Tensor,
    ndim: int = 2,
    spacing: tuple[float, ...] | None = None,
    symmetric: bool = False,
) -> torch.Tensor:
    """Forward differences of ``u`` along its last ``ndim`` axes, Neumann boundary.

    Parameters
    ----------
    u : torch.Tensor
        Tensor of shape ``(..., *spatial)`` with ``len(spatial) == ndim``.
    ndim : int
        Number of trailing spatial axes (2 for images, 3 for volumes).
    spacing : tuple of float, optional
        Grid step along each spatial axis; differences are divided by it. None means 1.
    symmetric : bool
        Append the backward differences as components ``ndim .. 2 ndim - 1`` (their first
        entry along their axis is 0).

    Returns
    -------
    torch.Tensor
        Shape ``(..., ndim, *spatial)`` (``2 ndim`` with ``symmetric``); component ``k`` holds
        the differences along spatial axis ``k``, and its last entry along that axis is 0.

    Examples
    --------
    >>> import torch
    >>> gradient(torch.tensor([[0.0, 1.0, 3.0]]))
    tensor([[[0., 0., 0.]],
    <BLANKLINE>
            [[1., 2., 0.]]])
    """
    if ndim < 1 or u.dim() < ndim:
        raise ValueError(f"gradient needs at least {ndim} axes, got shape {tuple(u.shape)}")
    components = []
    for backward in (False, True) if symmetric else (False,):
        for k in range(ndim):
            dim = u.dim() - ndim + k
            if u.shape[dim] < 2:
                components.append(torch.zeros_like(u))
                continue
            diff = torch.diff(u, dim=dim)
            if spacing is not None and spacing[k] != 1.0:
                diff = diff / spacing[k]
            pieces = [_zeros_slice(u, dim), diff] if backward else [diff, _zeros_slice(u, dim)]
            components.append(torch.cat(pieces, dim=dim))
    return torch.stack(components, dim=u.dim() - ndim)


def divergence(
    p: torch.Tensor,
    ndim: int = 2,
    spacing: tuple[float, ...] | None = None,
    symmetric: bool = False,
) -> torch.Tensor:
    """Backward-difference divergence, the negative adjoint of :func:`gradient`.

    ``div p = sum_k B_k p_k`` with ``B_k q[0] = q[0]``, ``B_k q[i] = q[i] - q[i - 1]`` for
    ``0 < i < n - 1`` and ``B_k q[n - 1] = -q[n - 2]`` along spatial axis ``k``; the last entry
    of ``p_k`` along its axis is ignored, so ``<gradient(u), p> = -<u, divergence(p)>`` holds for
    every ``p``.

    Parameters
    ----------
    p : torch.Tensor
        Shape ``(..., ndim, *spatial)``, as returned by :func:`gradient`.
    ndim : int
        Number of trailing spatial axes.
    spacing : tuple of float, optional
        Grid steps, as given to :func:`gradient` (term ``k`` is divided by ``spacing[k]``).
    symmetric : bool
        ``p`` has ``2 ndim`` components, the second ``ndim`` matching the backward differences:
        their term is ``q[i + 1] - q[i]`` (``q[0]`` ignored), the negative adjoint of those.

    Returns
    -------
    torch.Tensor
        Shape ``(..., *spatial)``.
    """
    components = 2 * ndim if symmetric else ndim
    if p.dim() < ndim + 1 or p.shape[p.dim() - ndim - 1] != components:
        raise ValueError(
            f"divergence expects shape (..., {components}, *spatial), got {tuple(p.shape)}"
        )
    component_dim = p.dim() - ndim - 1
    result: torch.Tensor | None = None
    for index in range(components):
        k, backward = index % ndim, index >= ndim
        q = p.select(component_dim, index)
        dim = q.dim() - ndim + k
        n = q.shape[dim]
        if n < 2:
            term = torch.zeros_like(q)
        else:
            inner = q.narrow(dim, 1 if backward else 0, n - 1)
            zero = _zeros_slice(q, dim)
            term = torch.cat([inner, zero], dim=dim) - torch.cat([zero, inner], dim=dim)
            if spacing is not None and spacing[k] != 1.0:
                term = term / spacing[k]
        result = term if result is None else result + term
    assert result is not None
    return result


def safe_power(s: torch.Tensor, exponent: float) -> torch.Tensor:
    """``s ** exponent`` for ``s >= 0``, with value 0 and a finite (zero) gradient where s = 0.

    ``sqrt`` and other powers below 1 have an infinite derivative at 0; autograd would turn it
    into NaN on flat regions. The double ``where`` keeps both the value and the gradient finite.
    """
    positive = s > 0
    safe = torch.where(positive, s, torch.ones_like(s))
    return torch.where(positive, safe.pow(exponent), torch.zeros_like(s))


def coupled_squared_norm(g: torch.Tensor, tv: str, color: str) -> torch.Tensor:
    """The squared magnitude that TV raises to ``beta / 2``, for a gradient ``g``.

    ``g`` has shape ``(N, C, ndim, *spatial)``. Returns, keeping size-1 axes:

    - isotropic, channelwise: ``sum_k g_k^2`` per channel, shape ``(N, C, 1, *spatial)``
    - isotropic, vectorial: ``sum_c sum_k g_ck^2``, shape ``(N, 1, 1, *spatial)``
    - anisotropic, channelwise: ``g_ck^2``, shape ``(N, C, ndim, *spatial)``
    - anisotropic, vectorial: ``sum_c g_ck^2``, shape ``(N, 1, ndim, *spatial)``
    - symmetric (``g`` from ``gradient(..., symmetric=True)``, ``2 ndim`` components): each
      stencil's isotropic sum, shape ``(N, C or 1, 2, *spatial)``

    :func:`spread` repeats the symmetric kind's stencil values over their components.
    """
    squares = g * g
    if tv == "symmetric":
        n, c, components, *spatial = g.shape
        squares = squares.view(n, c, 2, components // 2, *spatial).sum(dim=3)
        return squares if color == "channelwise" else squares.sum(dim=1, keepdim=True)
    if tv == "anisotropic" and color == "channelwise":
        return squares
    if tv == "isotropic":
        dims: tuple[int, ...] = (2,) if color == "channelwise" else (1, 2)
    else:
        dims = (1,)
    return squares.sum(dim=dims, keepdim=True)


def spread(s: torch.Tensor, tv: str, ndim: int) -> torch.Tensor:
    """``s`` from :func:`coupled_squared_norm` (or a function of it), broadcastable against the
    gradient it came from: the symmetric kind's per-stencil values repeated over the stencil's
    ``ndim`` components; other kinds as they are."""
    return s.repeat_interleave(ndim, dim=2) if tv == "symmetric" else s
