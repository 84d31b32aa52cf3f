"""Denoising a clip as it streams: frame by frame, or as space-time volumes in chunks.

:func:`denoise_clip` takes frames one at a time (an iterator, such as
:class:`tvdenoise.io.video.VideoReader`) and hands denoised frames to ``write`` in order, so
memory holds one chunk, whatever the clip's length.

- ``volume=False``: each frame is denoised on its own (2-D TV).
- ``volume=True``: chunks of ``chunk`` consecutive frames are denoised as ``(T, H, W, 3)``
  volumes with 3-D TV (``spacing=(dt, 1, 1)`` weighs time against space). Consecutive chunks
  share ``overlap`` frames, blended with linear weights as tiles are
  (:mod:`tvdenoise.tiling`), so the cut between chunks does not show.

A frame (or a chunk) whose solve would not fit the memory budget is cut into overlapping
tiles, as a still image is (:mod:`tvdenoise.tiling`): ``tile`` pixels square, blended over
``tile_overlap``; a space-time chunk is tiled in space only, each tile holding every frame
of the chunk (:func:`space_time_tile` sizes them).

The automatic weight (``weight="auto"``) is chosen once per clip, on its first frame
(SURE on a 2-D image, as for photos), and used for every frame and chunk: a weight chosen per
frame or chunk changes with the content and makes the smoothing flicker, which a viewer
sees far more readily than a slightly off weight. In volume mode the weight chosen in 2-D is
used as it is for the 3-D problem.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .progress import FrameProgress
from .values import from_float, to_float

__all__ = [
    "DEFAULT_CHUNK",
    "DEFAULT_OVERLAP",
    "FrameProgress",
    "chunk_for",
    "denoise_clip",
    "space_time_tile",
]

#: Frames per space-time chunk: a 1080p colour chunk of 16 float32 frames is 400 MB, and the
#: primal-dual solver holds about ten such arrays with 3-D symmetric TV.
DEFAULT_CHUNK = 16
#: Frames shared by consecutive chunks and blended (benchmarks/bench_formats.py measures the
#: seam against the whole-clip solution for 0 to 8).
DEFAULT_OVERLAP = 4


#: Solver memory per value of a space-time chunk (3-D symmetric TV, float32): 805 MiB per
#: 1080p colour frame measured (benchmarks/bench_formats.py), about 34 float32 arrays.
BYTES_PER_VALUE = 136
#: The shortest chunk a memory budget may ask for (with 1 frame of overlap).
MIN_CHUNK = 4


def chunk_for(height: int, width: int, channels: int, budget: int) -> tuple[int, int]:
    """Frames per chunk and overlap within ``budget`` bytes: :data:`DEFAULT_CHUNK` and
    :data:`DEFAULT_OVERLAP` when it allows, else fewer, down to :data:`MIN_CHUNK` frames
    sharing 1 (which may exceed a budget too small for 4 frames).

    >>> chunk_for(1080, 1920, 3, 2 * 2**30), chunk_for(1080, 1920, 3, 16 * 2**30)
    ((4, 1), (16, 4))
    """
    frames = budget // max(1, BYTES_PER_VALUE * height * width * channels)
    chunk = int(min(DEFAULT_CHUNK, max(MIN_CHUNK, frames)))
    return chunk, min(DEFAULT_OVERLAP, max(1, chunk // 4))


#: Bytes per value of a chunk held whole around its solves when it is tiled in space: the
#: frames gathered, their stacked copy, the blended output and the shared tail (float32).
CHUNK_BYTES_PER_VALUE = 16


def space_time_tile(
    height: int, width: int, channels: int, chunk: int, budget: int, overlap: int
) -> int | None:
    """The side of the square space-time tiles (``chunk`` frames deep) that keep a chunk's
    solve within ``budget`` bytes, or None when the whole chunk fits. The chunk itself is
    held whole (:data:`CHUNK_BYTES_PER_VALUE`); the rest of the budget goes to one tile's
    solve (:data:`BYTES_PER_VALUE`). A multiple of 64, at least ``4 * overlap`` (so tiles
    are mostly their own pixels; a budget too small for that is exceeded, as for images).

    >>> budget = 2 * 2**30
    >>> space_time_tile(2160, 3840, 3, 4, budget, 64), space_time_tile(720, 1280, 3, 5, budget, 64)
    (576, None)
    """
    values = height * width * channels * chunk
    if BYTES_PER_VALUE * values <= budget:
        return None
    left = max(0, budget - CHUNK_BYTES_PER_VALUE * values)
    side = int(math.sqrt(left / (BYTES_PER_VALUE * chunk * channels))) // 64 * 64
    return max(4 * overlap, side)


def _tiled_volume(
    block: np.ndarray, mask: np.ndarray | None, tile: int, overlap: int, **options: Any
) -> tuple[np.ndarray, Any]:
    """Denoise a ``(T, H, W[, C])`` chunk with 3-D TV in space-time tiles of ``tile`` pixels
    square and every frame deep, blended over ``overlap`` pixels as image tiles are."""
    from .denoising import denoise
    from .solvers.base import combine_records
    from .tiling import plan_tiles

    height, width = block.shape[1:3]
    rows, columns = plan_tiles(height, tile, overlap), plan_tiles(width, tile, overlap)
    output = np.zeros(block.shape, np.float32)
    records = []
    for (y0, y1), row_weight in zip(rows.spans, rows.weights, strict=True):
        for (x0, x1), column_weight in zip(columns.spans, columns.weights, strict=True):
            part_mask = None if mask is None else mask[:, y0:y1, x0:x1]
            denoised, record = denoise(
                np.ascontiguousarray(block[:, y0:y1, x0:x1]),
                **options,
                mask=part_mask,
                volume=True,
                return_record=True,
            )
            records.append(record)
            weight = np.outer(row_weight, column_weight)[None]
            output[:, y0:y1, x0:x1] += denoised * (weight[..., None] if block.ndim == 4 else weight)
    return output, combine_records(records)


def denoise_clip(
    frames: Iterable[np.ndarray],
    write: Callable[[np.ndarray], object],
    *,
    volume: bool = False,
    chunk: int = DEFAULT_CHUNK,
    overlap: int = DEFAULT_OVERLAP,
    tile: int | None = None,
    tile_overlap: int = 64,
    total: int = 0,
    on_progress: Callable[[FrameProgress], object] | None = None,
    **options: Any,
) -> Any:
    """Denoise a stream of frames and write each denoised frame, in order.

    Parameters
    ----------
    frames : iterable of numpy.ndarray
        ``(H, W)`` or ``(H, W, 3)`` frames of one shape and integer dtype (8-bit video).
    write : callable
        Called with each denoised frame, of the input's dtype and shape.
    volume : bool
        Denoise chunks of frames with 3-D TV rather than each frame alone.
    chunk, overlap : int
        Frames per chunk and frames shared by consecutive chunks (volume mode);
        ``overlap < chunk``.
    tile, tile_overlap : int or None, int
        Denoise each frame (each chunk, in space) in tiles of ``tile`` pixels square
        overlapping by ``tile_overlap`` (:func:`tvdenoise.tiling.denoise_tiled`); None: whole.
    total : int
        The clip's frame count, for ``on_progress`` (0 if unknown).
    on_progress : callable, optional
        Called with a :class:`FrameProgress` after each frame is written.
    **options
        Passed to :func:`tvdenoise.denoise` (``weight``, ``spacing``, ``device``,
        ``callback``, ...). A ``mask`` of one frame's ``(H, W)`` applies to every frame (to
        every frame of a chunk in volume mode).

    Returns
    -------
    SolveRecord
        One record for the whole clip (:func:`tvdenoise.solvers.base.combine_records`), with
        the weight choice when the weight was automatic.
    """
    from .auto_weight import with_choice
    from .denoising import denoise
    from .errors import InvalidParameterError
    from .solvers.base import combine_records
    from .tiling import denoise_tiled

    if volume and not 0 <= overlap < chunk:
        raise InvalidParameterError(
            f"overlap must be >= 0 and below chunk ({chunk} frames), got {overlap}"
        )
    records: list[Any] = []
    choice = None
    written = 0
    mask = options.pop("mask", None)

    def emit(values: np.ndarray, dtype: np.dtype) -> None:
        nonlocal written
        write(from_float(values, dtype))
        written += 1
        if on_progress is not None:
            on_progress(FrameProgress(written, total))

    def solve_frame(values: np.ndarray, **extra: Any) -> tuple[np.ndarray, Any]:
        if tile is None:
            return denoise(values, **options, **extra, mask=mask, return_record=True)
        return denoise_tiled(
            values, tile=tile, overlap=tile_overlap, **options, **extra, mask=mask,
            return_record=True,
        )  # fmt: skip

    def settle_weight(first: np.ndarray) -> None:
        nonlocal choice, options
        if options.get("weight") == "auto":
            _, record = solve_frame(first)
            choice = record.weight_choice
            options = {**options, "weight": choice.weight}
            options.pop("sigma", None)

    step = 1.0 / 255
    if not volume:
        for frame in frames:
            values = to_float(frame)
            if not records:
                settle_weight(values)
            denoised, record = solve_frame(values, precision=step)
            records.append(record)
            emit(denoised, frame.dtype)
    else:
        buffer: list[np.ndarray] = []  # the chunk being gathered, float
        tail: np.ndarray | None = None  # the previous chunk's last `overlap` denoised frames
        dtype = np.dtype(np.uint8)
        iterator = iter(frames)
        finished = False
        while not finished:
            fresh = 0
            while len(buffer) < chunk:
                incoming: np.ndarray | None = next(iterator, None)
                if incoming is None:
                    finished = True
                    break
                dtype = incoming.dtype
                buffer.append(to_float(incoming))
                fresh += 1
            if not records and buffer:
                settle_weight(buffer[0])
            if fresh == 0:
                break  # the previous chunk's tail already holds the last frames
            block = np.stack(buffer)
            chunk_mask = None if mask is None else np.broadcast_to(mask, (len(buffer), *mask.shape))
            if tile is None:
                denoised, record = denoise(
                    block, **options, mask=chunk_mask, volume=True, precision=step,
                    return_record=True,
                )  # fmt: skip
            else:
                denoised, record = _tiled_volume(
                    block, chunk_mask, tile, tile_overlap, **options, precision=step
                )
            del block
            records.append(record)
            shared = 0 if tail is None else tail.shape[0]
            for index in range(shared):
                # Linear cross-fade over the shared frames, as tiles blend.
                ramp = (index + 0.5) / shared
                emit((1.0 - ramp) * tail[index] + ramp * denoised[index], dtype)  # type: ignore[index]
            keep = 0 if finished else min(overlap, len(buffer) - shared)
            for index in range(shared, len(buffer) - keep):
                emit(denoised[index], dtype)
            tail = denoised[len(buffer) - keep :] if keep else None
            buffer = buffer[len(buffer) - keep :] if keep else []
        if tail is not None:
            for values in tail:
                emit(values, dtype)
    if not records:
        raise InvalidParameterError("the clip has no frames")
    combined = combine_records(records)
    return with_choice(combined, choice) if choice is not None else combined
