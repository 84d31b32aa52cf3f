"""Denoising one image's pixels as a run's settings ask: on the unit scale of their dtype,
with NaN pixels and a ``--mask`` left out of the data term, and in tiles when the image is
larger than ``--tile`` or the memory budget allows (:mod:`tvdenoise.tiling`); 8- and 16-bit
images go to the solver's planes and back in one pass each
(:func:`tvdenoise.values.to_float_planes`).

:mod:`tvdenoise.batch` reads and writes the files around it; torch is imported only inside
the functions, as there.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .settings import RunSettings

__all__ = ["mask_file", "output_step", "solve_pixels", "tile_size"]


def _mask_weights(pixels: Any, mask: str | None, volume: bool) -> Any:
    """The data weights of ``pixels`` ((H, W[, C]) or pages (D, H, W[, C])): 0 at NaN
    pixels, and the --mask image's values when one is given (0 = ignore the data, its
    maximum = trust it); None when every pixel is trusted. ``mask`` is the --mask setting."""
    import numpy as np

    spatial = pixels.shape[: 3 if volume else 2]
    weights = None
    if pixels.dtype.kind == "f":
        nan = np.isnan(pixels)
        if nan.ndim > len(spatial):
            nan = nan.any(axis=-1)
        if nan.any():
            weights = (~nan).astype(np.float32)
    if mask not in (None, "nan"):
        from_file = np.broadcast_to(mask_file(str(mask), spatial[-2:]), spatial)
        weights = from_file if weights is None else weights * from_file
    return weights


@functools.lru_cache(maxsize=4)
def mask_file(path: str, shape: tuple[int, int]) -> Any:
    """A --mask image as weights in [0, 1] ((H, W); colour masks by their mean)."""
    from .errors import ImageReadError
    from .image_io import load_image, to_float

    mask = load_image(path)
    values = to_float(mask.pixels)
    values = values.mean(axis=-1) if values.ndim == 3 else values
    if values.shape != tuple(shape):
        raise ImageReadError(
            f"{path}: the mask is {values.shape[1]}x{values.shape[0]}, the image "
            f"{shape[1]}x{shape[0]}"
        )
    low, high = float(values.min()), float(values.max())
    if low < 0 or high > 1:
        raise ImageReadError(f"{path}: mask values must be in [0, 1], found {low:g} to {high:g}")
    return values.astype("float32")


def tile_size(shape: tuple[int, ...], settings: RunSettings) -> int | None:
    """The tile side for a 2-D image of ``shape`` (H, W[, C]), or None to solve it whole:
    ``settings.tiles.tile`` when set (> 0), else a tile that keeps the solver under
    ``settings.tiles.max_memory``."""
    from .tiling import tile_for_budget

    height, width = shape[:2]
    channels = shape[2] if len(shape) == 3 else 1
    tiles, solve = settings.tiles, settings.solve
    if tiles.tile > 0:
        return tiles.tile if max(height, width) > tiles.tile else None
    # The fused kernel solves L2, beta = 1 with the auto or rof solver; the others hold more.
    fused = solve.fidelity == "l2" and solve.beta == 1.0 and solve.solver in ("auto", "rof")
    return tile_for_budget(
        height,
        width,
        channels,
        tiles.budget,
        overlap=tiles.tile_overlap,
        tv=solve.tv,
        fused=None if fused else False,
    )


def solve_pixels(
    pixels: Any,
    *,
    options: dict[str, Any],
    device: Any,
    callback: Any,
    settings: RunSettings | None = None,
    volume: bool = False,
) -> Any:
    """Denoise pixels of any dtype on the unit scale the weight is defined on; return pixels
    of the same dtype (floats outside [0, 1] keep their own range) and the solve record.
    2-D images larger than the tile size or the memory budget (``settings``) are denoised in
    tiles. NaN pixels and a --mask leave the data term (:func:`tvdenoise.denoise`'s
    ``mask``); NaN pixels are NaN in the output."""
    import numpy as np

    from .values import value_range

    options = {**options, "precision": output_step(pixels.dtype)}
    weights = _mask_weights(pixels, None if settings is None else settings.read.mask, volume)
    missing = np.isnan(pixels) if pixels.dtype.kind == "f" else None
    span = None
    if weights is not None:
        options["mask"] = weights
        # The span of the values there are; NaN pixels are masked out and written back NaN.
        finite = pixels[np.isfinite(pixels)] if missing is not None and missing.any() else pixels
        span = value_range(finite if finite.size else np.zeros(1, pixels.dtype))
    pixels_out, record = _solve_masked(
        pixels,
        span,
        options=options,
        device=device,
        callback=callback,
        settings=settings,
        volume=volume,
    )
    if missing is not None and missing.any():
        pixels_out[missing] = np.nan
    return pixels_out, record


def _solve_masked(
    pixels: Any,
    span: Any,
    *,
    options: dict[str, Any],
    device: Any,
    callback: Any,
    settings: RunSettings | None,
    volume: bool,
) -> Any:
    """:func:`solve_pixels` once the mask (``options["mask"]``) and the value span are known."""
    from .denoising import denoise
    from .image_io import from_unit_range, to_unit_range
    from .values import from_float_planes, planes_apply, to_float, to_float_planes

    tile = None if volume or settings is None else tile_size(pixels.shape, settings)
    if tile is not None:
        from .tiling import denoise_tiled
        from .values import value_range

        assert settings is not None
        return denoise_tiled(
            pixels,
            tile=tile,
            overlap=settings.tiles.tile_overlap,
            span=span if span is not None else value_range(pixels),
            return_record=True,
            **options,
            device=device,
            callback=callback,
        )
    if span is None and not volume and planes_apply(pixels):
        # 8- and 16-bit images go to the solver's planes and back in one pass each, without
        # the float copies of the general path (each a page fault per 4 KiB on first touch).
        import torch

        result, record = denoise(
            torch.from_numpy(to_float_planes(pixels))[None],
            **options,
            device=device,
            callback=callback,
            return_record=True,
        )
        planes = result[0].cpu().numpy()
        return from_float_planes(planes, pixels.dtype, grey=pixels.ndim == 2), record
    if span is None:
        values, span = to_unit_range(pixels)
    else:
        values = span.normalise(to_float(pixels))
    if volume:
        import numpy as np
        import torch

        # (D, H, W[, C]) pages -> one (1, C, D, H, W) volume, denoised with 3-D TV.
        pages = values if values.ndim == 4 else values[..., None]
        volume_tensor = torch.from_numpy(np.ascontiguousarray(pages.transpose(3, 0, 1, 2)))
        result, record = denoise(
            volume_tensor[None], **options, device=device, callback=callback, return_record=True
        )
        denoised = result[0].permute(1, 2, 3, 0).cpu().numpy()
        denoised = denoised if values.ndim == 4 else denoised[..., 0]
    else:
        denoised, record = denoise(
            values, **options, device=device, callback=callback, return_record=True
        )
    return from_unit_range(denoised, span, pixels.dtype), record


def output_step(dtype: Any) -> float | None:
    """The step of integer pixels on the unit scale (1/255 for uint8), None for floats:
    the output is rounded to it, so the solvers stop once their certified distance to the
    minimiser is well below it (:func:`tvdenoise.denoise`'s ``precision``)."""
    import numpy as np

    dtype = np.dtype(dtype)
    return 1.0 / float(np.iinfo(dtype).max) if dtype.kind in "ui" else None
