"""The weighted graph of nonlocal TV: each pixel linked to its most similar pixels.

Nonlocal TV (Gilboa & Osher 2008) on a graph with weights ``w_ij >= 0``:

    NLTV(u) = sum_i ( sum_c sum_{j in N(i)} w_ij (u_cj - u_ci)^2 )^(1/2)

(vectorial colour; channelwise takes the root per channel and adds). Its graph gradient is
``(G u)_{i,k} = sqrt(w_ik) (u_{n(i,k)} - u_i)`` for the ``k``-th neighbour ``n(i, k)`` of
pixel ``i``, and :meth:`NonlocalGraph.divergence` is its exact negative adjoint,
``<G u, p> = -<u, div p>`` (a gather and a scatter-add over the same index).

:func:`build_graph` builds the graph from a pilot estimate (the default model's result):
for every offset in a ``window x window`` search window, the mean squared difference of the
``patch x patch`` patches around a pixel and around its shifted copy, computed for all pixels
at once with shifted images and a box filter; a running selection keeps the ``neighbours``
nearest per pixel, so memory stays at about ``neighbours`` values per pixel whatever the
window. Weights are ``exp(-d / scale^2)`` for the patch distance ``d`` (per value). On CPU a C
kernel (``_graph_kernel.c``, compiled and cached by :mod:`tvdenoise.native`) makes the same
selection in one pass per offset with the kept distances in place (no sort); elsewhere, or
without a compiler (``TVDENOISE_NO_NATIVE=1``), PyTorch operations do.

References
----------
G. Gilboa, S. Osher, "Nonlocal operators with applications to image processing", Multiscale
Model. Simul. 7 (2008). A. Buades, B. Coll, J.-M. Morel, "A non-local algorithm for image
denoising", CVPR (2005).
"""

from __future__ import annotations

import ctypes
import functools
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as functional

from . import native

__all__ = [
    "DEFAULT_NEIGHBOURS",
    "DEFAULT_PATCH",
    "DEFAULT_SCALE",
    "DEFAULT_WINDOW",
    "NonlocalGraph",
    "build_graph",
    "grid_graph",
]

#: Neighbours per pixel, search window and patch side (odd), and the weight scale as a multiple
#: of the pilot's weight: the issue 26 feasibility probe's K, window and patch (+0.64 dB over
#: the default model on a 12-image grey set at sigma 25); the scale is not tuned yet.
DEFAULT_NEIGHBOURS = 10
DEFAULT_WINDOW = 15
DEFAULT_PATCH = 7
DEFAULT_SCALE = 1.0
#: Offsets whose patch distances are computed together (memory: this many values per pixel,
#: on top of the kept ones).
OFFSET_CHUNK = 16


@dataclass(frozen=True, eq=False)
class NonlocalGraph:
    """A graph on the pixels of a batch of images, ``neighbours`` edges per pixel.

    Attributes
    ----------
    index : torch.Tensor
        ``(N, K, H * W)`` int64: the flat pixel index of each pixel's ``k``-th neighbour.
    root_weight : torch.Tensor
        ``(N, K, H, W)``: ``sqrt(w_ik)``; 0 for an unused edge.
    pilot : torch.Tensor, optional
        The ``(N, C, H, W)`` estimate the graph was built from (to rebuild it on a crop).
    scale : float
        The weight scale it was built with.
    """

    index: torch.Tensor
    root_weight: torch.Tensor
    pilot: torch.Tensor | None = None
    scale: float = 0.0
    window: int = DEFAULT_WINDOW
    patch: int = DEFAULT_PATCH

    @property
    def neighbours(self) -> int:
        return int(self.index.shape[1])

    def gradient(self, u: torch.Tensor) -> torch.Tensor:
        """``(G u)_{i,k} = sqrt(w_ik) (u_{n(i,k)} - u_i)`` for ``u`` (N, C, H, W); returns
        (N, C, K, H, W)."""
        n, c, h, w = u.shape
        k = self.neighbours
        flat = u.reshape(n, c, h * w)
        index = self.index.reshape(n, 1, k * h * w).expand(n, c, k * h * w)
        neighbour = torch.gather(flat, 2, index).view(n, c, k, h, w)
        return (neighbour - u.unsqueeze(2)) * self.root_weight.unsqueeze(1).to(u.dtype)

    def divergence(self, p: torch.Tensor) -> torch.Tensor:
        """The negative adjoint of :meth:`gradient`: for ``p`` (N, C, K, H, W),
        ``(div p)_m = sum_k sqrt(w_mk) p_mk - sum_{(i,k): n(i,k) = m} sqrt(w_ik) p_ik``."""
        n, c, k, h, w = p.shape
        weighted = p * self.root_weight.unsqueeze(1).to(p.dtype)
        index = self.index.reshape(n, 1, k * h * w).expand(n, c, k * h * w)
        incoming = torch.zeros((n, c, h * w), dtype=p.dtype, device=p.device)
        incoming.scatter_add_(2, index, weighted.reshape(n, c, k * h * w))
        return weighted.sum(dim=2) - incoming.view(n, c, h, w)

    @functools.cached_property
    def reverse(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The reverse adjacency, built once per graph: for each pixel ``m``, the edges
        ``e = k * H * W + i`` (pixel ``i``'s ``k``-th) that point at it, so that the incoming
        part of :meth:`divergence`, ``sum_{(i,k): n(i,k) = m} sqrt(w_ik) p_ik``, is a gather
        per pixel too (no scatter: parallel over pixels).

        Returns ``start`` (N, H * W + 1) int64, ``edge`` (N, K * H * W) int64 and ``weight``
        (N, K * H * W): image ``n``'s edges into ``m`` are ``edge[n, start[n, m] :
        start[n, m + 1]]``, in increasing order, with their ``sqrt(w)`` in ``weight`` (CSR
        layout); edges of weight 0 are left out (they sit at the end of each row).
        """
        n, k, hw = self.index.shape
        root_weight = self.root_weight.reshape(n, k * hw)
        live = root_weight != 0
        target = torch.where(live, self.index.reshape(n, k * hw), hw)
        edge = torch.sort(target, dim=1, stable=True).indices
        counts = torch.zeros((n, hw + 1), dtype=torch.long, device=target.device)
        counts.scatter_add_(1, target, torch.ones_like(target))
        start = torch.zeros((n, hw + 1), dtype=torch.long, device=target.device)
        start[:, 1:] = torch.cumsum(counts[:, :hw], dim=1)
        return start, edge, torch.gather(root_weight, 1, edge)

    def total_variation(self, u: torch.Tensor, color: str = "vectorial") -> torch.Tensor:
        """Per-sample ``NLTV(u)`` in float64 (module docstring)."""
        squares = self.gradient(u).double().square()
        dims: tuple[int, ...] = (2,) if color == "channelwise" else (1, 2)
        return squares.sum(dim=dims).sqrt().sum(dim=tuple(range(1, squares.dim() - len(dims))))

    def norm_squared(self) -> float:
        """A bound on ``||G||^2``: ``max over edges (i, j) of d_i + d_j``, ``d_i`` the weight of
        all edges at pixel ``i`` (leaving and arriving).

        ``G^T G = B W B^T`` is the weighted Laplacian of the graph (``B`` the incidence
        matrix, ``W`` the edge weights), whose largest eigenvalue is that of ``B^T B W``;
        its row for edge ``e = (i, j)`` sums to ``d_i + d_j`` (``2 w_e`` plus the weights of the
        edges sharing an end), so the largest row sum bounds it (Anderson & Morley's bound,
        weighted). At most ``2 max_i d_i``, the Gershgorin bound; on patch graphs about 30 %
        below it.
        """
        n, k, h, w = self.root_weight.shape
        weights = self.root_weight.double().square().reshape(n, k * h * w)
        target = self.index.reshape(n, k * h * w)
        degree = torch.zeros((n, h * w), dtype=torch.float64, device=weights.device)
        degree.scatter_add_(1, target, weights)
        degree += weights.view(n, k, h * w).sum(dim=1)
        source = degree.unsqueeze(1).expand(n, k, h * w).reshape(n, k * h * w)
        ends = torch.where(weights > 0, source + torch.gather(degree, 1, target), 0.0)
        return max(float(ends.max()), 1e-12)

    def repeat(self, times: int) -> NonlocalGraph:
        """The graph for a batch of ``times`` copies of each image batch, one after another
        (``torch.cat([f] * times)``)."""
        pilot = None if self.pilot is None else torch.cat([self.pilot] * times)
        return NonlocalGraph(
            torch.cat([self.index] * times),
            torch.cat([self.root_weight] * times),
            pilot,
            self.scale,
            self.window,
            self.patch,
        )

    def rebuilt(self, pilot: torch.Tensor) -> NonlocalGraph:
        """The graph built the same way on another pilot, such as crops or tiles of this
        one's (edges leaving a crop are not kept)."""
        return build_graph(
            pilot,
            neighbours=self.neighbours,
            window=self.window,
            patch=self.patch,
            scale=self.scale,
        )


def _box_mean(x: torch.Tensor, side: int) -> torch.Tensor:
    """Mean over the ``side x side`` window around each pixel of ``x`` (B, 1, H, W), the window
    cut at the border (only pixels inside count)."""
    if side <= 1:
        return x
    return functional.avg_pool2d(x, side, stride=1, padding=side // 2, count_include_pad=False)


SOURCE = Path(__file__).with_name("_graph_kernel.c")


@functools.cache
def load_kernel() -> ctypes.CDLL | None:
    """The compiled graph kernel (``_graph_kernel.c``), compiling it on first use; None where
    it cannot be had."""
    built = native.build(SOURCE, "graph_kernel", ("-fno-trapping-math",), isa=True)
    if built is None:
        return None
    pointer, size = ctypes.c_void_p, ctypes.c_long
    for suffix in ("f32", "f64"):
        function = getattr(built.library, f"nl_build_graph_{suffix}")
        function.restype = None
        function.argtypes = [
            pointer,
            *(size,) * 4,
            pointer,
            *(size,) * 3,
            ctypes.c_double,
            pointer,
            pointer,
            ctypes.c_int,
        ]
    return built.library


def build_graph(
    pilot: torch.Tensor,
    *,
    neighbours: int = DEFAULT_NEIGHBOURS,
    window: int = DEFAULT_WINDOW,
    patch: int = DEFAULT_PATCH,
    scale: float,
    backend: str = "auto",
) -> NonlocalGraph:
    """The ``neighbours`` most similar pixels of each pixel, within a ``window`` search window.

    Parameters
    ----------
    pilot : torch.Tensor
        ``(N, C, H, W)`` estimate (a first denoised image) the distances are measured on.
    neighbours : int
        Edges per pixel, K (fewer where the window holds fewer pixels: the rest get weight 0).
    window, patch : int
        Sides (odd) of the search window and of the compared patches.
    scale : float
        Weight scale ``h`` > 0: ``w = exp(-d / h^2)``, ``d`` the mean squared difference per
        value of the two patches (over the patch's pixels inside the image and the channels).
    backend : {"auto", "native", "torch"}
        ``"native"`` the C kernel (CPU float32/float64; raises where it cannot be had),
        ``"torch"`` PyTorch operations, ``"auto"`` the kernel where it runs.

    Returns
    -------
    NonlocalGraph

    Examples
    --------
    >>> import torch
    >>> graph = build_graph(torch.zeros(1, 1, 8, 8), neighbours=4, window=5, patch=3, scale=0.1)
    >>> graph.index.shape, float(graph.root_weight.min())
    (torch.Size([1, 4, 64]), 1.0)
    """
    if pilot.dim() != 4:
        raise ValueError(f"build_graph needs a (N, C, H, W) pilot, got {tuple(pilot.shape)}")
    n, _, h, w = pilot.shape
    radius = window // 2
    offsets = [
        (dy, dx)
        for dy in range(-radius, radius + 1)
        for dx in range(-radius, radius + 1)
        if (dy, dx) != (0, 0)
    ]
    # Nearer offsets first, so ties (flat regions) keep the nearest pixels.
    offsets.sort(key=lambda o: (o[0] ** 2 + o[1] ** 2, o))
    k = min(neighbours, len(offsets))
    usable = pilot.device.type == "cpu" and pilot.dtype in (torch.float32, torch.float64)
    library = load_kernel() if backend != "torch" and usable else None
    if backend == "native" and library is None:
        raise ValueError("backend native needs a CPU float32/float64 pilot and a C compiler")
    if library is not None:
        return _build_native(library, pilot, offsets, k, window, patch, scale)
    padded = functional.pad(pilot, (radius, radius, radius, radius))
    rows = torch.arange(h, device=pilot.device).view(h, 1)
    cols = torch.arange(w, device=pilot.device).view(1, w)
    flat = rows * w + cols
    best_d = pilot.new_full((n, 0, h, w), float("inf"))
    best_i = torch.zeros((n, 0, h, w), dtype=torch.long, device=pilot.device)
    for start in range(0, len(offsets), OFFSET_CHUNK):
        chunk = offsets[start : start + OFFSET_CHUNK]
        distances, indices = [], []
        for dy, dx in chunk:
            shifted = padded[:, :, radius + dy : radius + dy + h, radius + dx : radius + dx + w]
            inside = (rows + dy >= 0) & (rows + dy < h) & (cols + dx >= 0) & (cols + dx < w)
            squares = (pilot - shifted).square().mean(dim=1) * inside
            distances.append(squares)
            indices.append((flat + dy * w + dx) * inside + flat * ~inside)
        d = _box_mean(torch.stack(distances, dim=1).view(n * len(chunk), 1, h, w), patch)
        d = d.view(n, len(chunk), h, w)
        valid = torch.stack(
            [
                (rows + dy >= 0) & (rows + dy < h) & (cols + dx >= 0) & (cols + dx < w)
                for dy, dx in chunk
            ]
        )
        d = torch.where(valid.unsqueeze(0), d, torch.inf)
        index = torch.stack(indices).unsqueeze(0).expand(n, -1, -1, -1)
        all_d = torch.cat([best_d, d], dim=1)
        all_i = torch.cat([best_i, index], dim=1)
        keep = min(k, all_d.shape[1])
        # stable top-k: ties keep the earlier (nearer) offsets
        order = torch.sort(all_d, dim=1, stable=True).indices[:, :keep]
        best_d = torch.gather(all_d, 1, order)
        best_i = torch.gather(all_i, 1, order)
    root_weight = torch.where(
        torch.isfinite(best_d), torch.exp(-0.5 * best_d / (scale * scale)), 0.0
    ).to(pilot.dtype)
    index = best_i.reshape(n, k, h * w).contiguous()
    return NonlocalGraph(index, root_weight.contiguous(), pilot, scale, window, patch)


def _build_native(
    library: ctypes.CDLL,
    pilot: torch.Tensor,
    offsets: list[tuple[int, int]],
    k: int,
    window: int,
    patch: int,
    scale: float,
) -> NonlocalGraph:
    n, c, h, w = pilot.shape
    source = pilot.contiguous()
    table = torch.tensor(offsets, dtype=torch.int32).reshape(-1).contiguous()
    index = torch.empty((n, k, h * w), dtype=torch.long)
    root_weight = torch.empty((n, k, h, w), dtype=pilot.dtype)
    function = getattr(
        library, f"nl_build_graph_{'f64' if pilot.dtype == torch.float64 else 'f32'}"
    )
    function(
        source.data_ptr(),
        n,
        c,
        h,
        w,
        table.data_ptr(),
        len(offsets),
        k,
        patch,
        scale,
        index.data_ptr(),
        root_weight.data_ptr(),
        torch.get_num_threads(),
    )
    return NonlocalGraph(index, root_weight, pilot, scale, window, patch)


def grid_graph(n: int, h: int, w: int, *, device: torch.device | str = "cpu") -> NonlocalGraph:
    """The graph linking each pixel to its lower and right neighbours with unit weights (and
    an unused, zero-weight edge at the last row and column): nonlocal TV on it is forward
    isotropic TV (``tv="isotropic"``)."""
    rows = torch.arange(h, device=device).view(h, 1).expand(h, w)
    cols = torch.arange(w, device=device).view(1, w).expand(h, w)
    flat = rows * w + cols
    down = torch.where(rows < h - 1, flat + w, flat)
    right = torch.where(cols < w - 1, flat + 1, flat)
    index = torch.stack([down, right]).reshape(1, 2, h * w).expand(n, 2, h * w).contiguous()
    weight = torch.stack([(rows < h - 1), (cols < w - 1)]).to(torch.float32)
    return NonlocalGraph(index, weight.unsqueeze(0).expand(n, 2, h, w).contiguous())
