"""Denoise images too large for memory in overlapping tiles with blended seams.

An image of ``H x W`` pixels is cut into tiles of ``tile x tile`` pixels that overlap their
neighbours by ``overlap`` pixels. Each tile is denoised on its own; where tiles overlap, the
results are blended with weights that fall linearly to zero across the overlap, after
discarding a quarter of the overlap at each tile edge (the pixels nearest a cut carry the
artificial boundary condition and are never used). The weights of all tiles sum to one at
every pixel, so a constant image stays constant.

Tiles are processed one band of rows at a time, and each finished band is converted straight
back to the image's dtype: besides the input and the output, only two bands of float values
and one tile's solver state are held, whatever the image size.

Why tiling changes the result at all: the TV minimiser is not local. A flat region's level
depends on its whole area, so cutting it moves its value by about ``weight * cut length /
area``. On natural images the influence of a cut decays within a few dozen pixels at the
usual weights; :data:`DEFAULT_OVERLAP` is chosen from a measurement (see
``benchmarks/bench_scale.py``) so that tiled and untiled results agree to 1e-3 at weight 0.1.

The defaults here are also the command line's (``--tile-overlap``, ``--max-memory``), which
:mod:`tvdenoise.settings` reads from this module; numpy is imported inside the functions so
that reading them costs ``tvdenoise --help`` nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import InvalidParameterError
from .progress import ESTIMATING, SOLVING, Stage

if TYPE_CHECKING:
    import numpy as np

    from .values import ValueRange

__all__ = [
    "BYTES_PER_VALUE",
    "BYTES_PER_VALUE_GENERIC",
    "DEFAULT_MAX_MEMORY",
    "DEFAULT_OVERLAP",
    "DEFAULT_TILE",
    "TilePlan",
    "blend_weights",
    "bytes_per_value",
    "denoise_tiled",
    "plan_tiles",
    "solver_bytes",
    "tile_for_budget",
]

#: Overlap between neighbouring tiles, in pixels: tiled and untiled results then agree to
#: better than 1e-3 at weight 0.1 (measured by benchmarks/bench_scale.py).
DEFAULT_OVERLAP = 64
#: Tile side used by ``--tile`` when only a memory budget is given and it allows this much.
DEFAULT_TILE = 1024
#: Solver memory above which an image is denoised in tiles (per worker process).
DEFAULT_MAX_MEMORY = "2GiB"
#: Bytes the fused ROF kernel holds per float32 pixel-channel, by TV kind: u, its
#: extrapolation and f (4 bytes each) and the dual, 4 components for symmetric TV (the default)
#: and 2 for forward TV, plus the coarse levels of a multiscale solve; measured peaks of a
#: whole solve are 29.1 and 21.0 (benchmarks/bench_speed.py's memory probe, which counts f).
#: The automatic weight search adds a bounded amount: a batch of two on its 16 tiles of
#: 128x128 (:func:`tvdenoise.auto_weight.search_windows`).
BYTES_PER_VALUE = {"symmetric": 29.5, "isotropic": 21.5, "anisotropic": 21.5}
#: The same for the generic solvers (no C compiler, or a fidelity or beta the kernel does not
#: take): the generic Chambolle-Pock in PyTorch operations peaks at 102 (forward) and 172
#: (symmetric) bytes per pixel-channel (bench_speed.py's memory probe with
#: TVDENOISE_NO_NATIVE=1, 3x1024x1024).
BYTES_PER_VALUE_GENERIC = 192


def bytes_per_value(tv: str = "symmetric", fused: bool | None = None) -> float:
    """Solver bytes per float32 pixel-channel: :data:`BYTES_PER_VALUE` for ``tv`` where the
    fused kernel runs, else :data:`BYTES_PER_VALUE_GENERIC`.

    ``fused`` says whether the problem is one the kernel solves (L2, beta = 1, solver auto or
    rof); None asks only whether the kernel can be loaded (the first call may compile it, as
    the first solve would).
    """
    from .solvers import native

    if fused is None or fused:
        fused = native.load() is not None
    return (
        BYTES_PER_VALUE.get(tv, BYTES_PER_VALUE["symmetric"]) if fused else BYTES_PER_VALUE_GENERIC
    )


def solver_bytes(
    height: int,
    width: int,
    channels: int,
    *,
    double: bool = False,
    tv: str = "symmetric",
    fused: bool | None = None,
) -> int:
    """A bound on the solver memory for one ``height x width x channels`` image."""
    per_value = bytes_per_value(tv, fused) * (2 if double else 1)
    return math.ceil(height * width * channels * per_value)


def tile_for_budget(
    height: int,
    width: int,
    channels: int,
    budget: int,
    *,
    overlap: int = DEFAULT_OVERLAP,
    double: bool = False,
    tv: str = "symmetric",
    fused: bool | None = None,
) -> int | None:
    """The tile side to use under a memory budget, or None when the whole image fits.

    The largest multiple of 64 (at most :data:`DEFAULT_TILE` times 4) whose solver state fits
    half the budget (the other half is for the bands of blended values), and at least
    ``4 * overlap`` so that tiles are mostly their own pixels. ``tv`` and ``fused`` choose the
    bytes counted per value (:func:`bytes_per_value`).
    """
    if solver_bytes(height, width, channels, double=double, tv=tv, fused=fused) <= budget:
        return None
    per_pixel = channels * bytes_per_value(tv, fused) * (2 if double else 1)
    side = int(math.sqrt(budget / 2 / per_pixel)) // 64 * 64
    return max(4 * overlap, min(side, 4 * DEFAULT_TILE))


@dataclass(frozen=True)
class TilePlan:
    """Where the tiles lie along one axis: ``spans[k] = (start, stop)`` and their weights."""

    size: int
    spans: list[tuple[int, int]]
    weights: list[np.ndarray]


def plan_tiles(size: int, tile: int, overlap: int) -> TilePlan:
    """Tiles of ``tile`` pixels covering ``range(size)``, neighbours overlapping by at least
    ``overlap`` (the last tile is moved back to end at the edge), with their blend weights.

    Examples
    --------
    >>> plan_tiles(10, 6, 2).spans
    [(0, 6), (4, 10)]
    >>> plan_tiles(5, 8, 2).spans
    [(0, 5)]
    """
    if tile < 1 or overlap < 0:
        raise InvalidParameterError(f"tile must be >= 1 and overlap >= 0, got {tile}, {overlap}")
    if overlap >= tile:
        raise InvalidParameterError(
            f"overlap ({overlap}) must be smaller than the tile ({tile}); use a larger --tile"
        )
    if size <= tile:
        spans = [(0, size)]
    else:
        step = tile - overlap
        starts = [*range(0, size - tile, step), size - tile]
        spans = [(start, start + tile) for start in starts]
    return TilePlan(size, spans, blend_weights(size, spans, overlap))


def blend_weights(size: int, spans: list[tuple[int, int]], overlap: int) -> list[np.ndarray]:
    """Per-tile weights along one axis that sum to one at every position.

    Inside the image's own edges a tile has full weight. At an edge that cuts the image, its
    weight is zero over the outer quarter of the overlap, then rises linearly to one at the
    inner quarter; the weights are then divided by their sum.
    """
    import numpy as np

    margin = overlap // 4
    ramp = max(overlap - 2 * margin, 1)
    raw = []
    for start, stop in spans:
        position = np.arange(stop - start, dtype=np.float64) + 0.5
        weight = np.ones(stop - start)
        if start > 0:
            weight = np.minimum(weight, np.clip((position - margin) / ramp, 0.0, 1.0))
        if stop < size:
            weight = np.minimum(weight, np.clip((position[::-1] - margin) / ramp, 0.0, 1.0))
        raw.append(weight)
    total = np.zeros(size)
    for (start, stop), weight in zip(spans, raw, strict=True):
        total[start:stop] += weight
    if not (total > 0).all():  # pragma: no cover - spans always overlap by >= overlap
        raise InvalidParameterError("tiles leave pixels uncovered; use a larger overlap")
    return [
        (weight / total[start:stop]).astype(np.float32)
        for (start, stop), weight in zip(spans, raw, strict=True)
    ]


def denoise_tiled(
    image: np.ndarray,
    *,
    tile: int = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    span: ValueRange | None = None,
    return_record: bool = False,
    on_tile: Callable[[int, int], object] | None = None,
    **options: Any,
) -> Any:
    """Denoise a large ``(H, W)`` or ``(H, W, C)`` array tile by tile in bounded memory.

    Parameters
    ----------
    image : numpy.ndarray
        Integer images are scaled by their dtype's maximum, float images are used as they are
        (as :func:`tvdenoise.denoise` does), unless ``span`` says otherwise.
    tile, overlap : int
        Tile side and overlap between neighbouring tiles, in pixels (``overlap < tile``).
    span : ValueRange, optional
        The values mapped to [0, 1] before denoising (see
        :func:`tvdenoise.values.to_unit_range`); computed once for the whole image so every
        tile sees the same scale.
    return_record : bool
        Also return one :class:`tvdenoise.SolveRecord` for the whole image (iterations,
        energies and seconds summed over the tiles, the largest gap, converged only if every
        tile converged).
    on_tile : callable, optional
        Called with ``(done, total)`` after each tile.
    on_stage : callable, optional
        As for :func:`tvdenoise.denoise` (in ``options``): the weight search's stages, then
        "solving" with the detail ``"tile k of n"`` before each tile.
    **options
        Passed to :func:`tvdenoise.denoise` (weight, beta, tv, color, fidelity, solver,
        max_iter, tol, device, dtype, callback, sigma, seed, ...). With ``weight="auto"`` the
        weight is chosen once, as for the whole image (on tiles spread over it, sigma from its
        central crop), and used for every tile (a weight per tile would make the seams visible).

    Returns
    -------
    numpy.ndarray
        Same shape and dtype as ``image`` (and the record when ``return_record``).

    Examples
    --------
    >>> import numpy as np
    >>> noisy = np.random.default_rng(0).normal(0.5, 0.1, (40, 50)).astype(np.float32)
    >>> out = denoise_tiled(noisy, tile=32, overlap=8, weight=0.1)
    >>> out.shape, out.dtype, bool(out.std() < noisy.std())
    ((40, 50), dtype('float32'), True)
    """
    import numpy as np

    from .denoising import denoise
    from .values import ValueRange, to_float

    pixels = np.asarray(image)
    if pixels.ndim not in (2, 3):
        raise InvalidParameterError(
            f"denoise_tiled takes an (H, W) or (H, W, C) array, got shape {pixels.shape}"
        )
    if span is None:
        span = ValueRange(0.0, 1.0)
    height, width = pixels.shape[:2]
    rows, columns = plan_tiles(height, tile, overlap), plan_tiles(width, tile, overlap)

    on_stage = options.pop("on_stage", None)
    choice = None
    if options.get("weight") == "auto":
        choice = _choose_weight(pixels, span, options, on_stage)
        options = {**options, "weight": choice.weight}
        options.pop("sigma", None)
        options.pop("seed", None)

    output = np.empty_like(pixels)
    records = []
    total = len(rows.spans) * len(columns.spans)
    pending: np.ndarray | None = None  # blended rows [pending_start, ...) not yet final
    pending_start = 0
    for row_index, ((y0, y1), row_weight) in enumerate(zip(rows.spans, rows.weights, strict=True)):
        band = np.zeros((y1 - y0, width, *pixels.shape[2:]), dtype=np.float32)
        for column_index, ((x0, x1), column_weight) in enumerate(
            zip(columns.spans, columns.weights, strict=True)
        ):
            values = span.normalise(to_float(pixels[y0:y1, x0:x1]))
            tile_options = options
            if options.get("mask") is not None:  # a data mask of the whole image: this tile's
                tile_options = {**options, "mask": options["mask"][y0:y1, x0:x1]}
            if on_stage is not None:
                done = row_index * len(columns.spans) + column_index
                on_stage(Stage(SOLVING, f"tile {done + 1} of {total}"))
            denoised, record = denoise(values, **tile_options, return_record=True)
            records.append(record)
            weight = np.outer(row_weight, column_weight)
            if pixels.ndim == 3:
                weight = weight[..., None]
            band[:, x0:x1] += denoised * weight
            if on_tile is not None:
                on_tile(row_index * len(columns.spans) + column_index + 1, total)
        if pending is not None:
            # Rows above this band are final; rows shared with it are added to it.
            final = y0 - pending_start
            _emit(output, pending_start, pending[:final], span)
            band[: pending.shape[0] - final] += pending[final:]
        pending, pending_start = band, y0
    if pending is not None:
        _emit(output, pending_start, pending, span)

    if not return_record:
        return output
    from .solvers.base import combine_records

    record = combine_records(records)
    if choice is not None:
        from .auto_weight import with_choice

        record = with_choice(record, choice)
    return output, record


def _emit(output: np.ndarray, start: int, values: np.ndarray, span: ValueRange) -> None:
    """Write final unit-range rows into ``output`` from row ``start``, converting 64 rows at
    a time (the conversion to integers works in float64: a whole band at once would need
    several times the band's size in temporaries)."""
    from .values import from_unit_range

    for top in range(0, values.shape[0], 64):
        rows = values[top : top + 64]
        output[start + top : start + top + rows.shape[0]] = from_unit_range(
            rows, span, output.dtype
        )


def _choose_weight(
    pixels: np.ndarray,
    span: ValueRange,
    options: dict[str, Any],
    on_stage: Callable[[Stage], object] | None = None,
) -> Any:
    """The SURE weight of the image, found as :func:`tvdenoise.denoise` finds it for a whole
    image (:func:`tvdenoise.auto_weight.search_windows`): on tiles spread over it, sigma
    estimated on its central crop; only those parts are read from ``pixels``, and nothing is
    solved at the chosen weight (:func:`tvdenoise.denoising.choice_only`)."""
    import dataclasses
    import time

    import torch

    from .auto_weight import SIGMA_SIDE, central_window, search_windows
    from .conversion import to_batch
    from .denoising import _fill_masked, _mask_weights, choice_only, denoise
    from .noise import estimate_sigma
    from .values import to_float

    height, width = pixels.shape[:2]
    mask = options.get("mask")

    options = {**options, "on_stage": on_stage}

    def region(window: tuple[slice, slice]) -> tuple[torch.Tensor, Any]:
        """A window (rows, columns) as a batch of one and its mask (None without one)."""
        batch = to_batch(span.normalise(to_float(pixels[window])), False)[0]
        return batch, None if mask is None else _mask_weights(mask[window], batch)

    windows = search_windows(height, width)
    if windows is None:  # small enough to be searched whole
        batch, weights = region((slice(None), slice(None)))
        with choice_only():
            return denoise(batch, **{**options, "mask": weights})
    start = time.perf_counter()
    sigma, estimated = options.get("sigma"), False
    if sigma is None:
        if on_stage is not None:
            on_stage(Stage(ESTIMATING))
        crop, weights = region(central_window(height, width, SIGMA_SIDE))
        if weights is not None:
            crop = _fill_masked(crop, weights)
        sigma, estimated = float(estimate_sigma(crop)), True
    sigma_seconds = time.perf_counter() - start if estimated else 0.0
    tiles = [
        region((slice(top, top + side), slice(left, left + side))) for top, left, side in windows
    ]
    batch = torch.cat([tile for tile, _ in tiles])
    weights = None if mask is None else torch.cat([tile_mask for _, tile_mask in tiles])
    with choice_only():
        choice = denoise(batch, **{**options, "mask": weights, "sigma": sigma})
    return dataclasses.replace(
        choice,
        sigma_estimated=estimated,
        sigma_seconds=sigma_seconds,
        seconds=choice.seconds + sigma_seconds,
    )
