"""The caller's image as a float batch for the solvers, and the way back (no I/O).

:func:`to_batch` takes what :func:`tvdenoise.denoise` accepts (a numpy array ``(H, W)`` or
``(H, W, C)``, a volume ``(D, H, W[, C])``, a PIL image, a torch tensor) and returns a float
tensor ``(N, C, H, W)`` (``(N, C, D, H, W)`` for a volume) with a function that turns a
result of that shape back into the input's type, layout and dtype. Integer arrays are scaled
by :func:`tvdenoise.values.to_float` (CONVENTIONS.md, "Values").
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .errors import InvalidParameterError
from .tv import as_batch
from .values import from_float, to_float

__all__ = ["to_batch"]


def to_batch(image: Any, volume: bool = False) -> tuple[torch.Tensor, Any]:
    """Convert ``image`` to a float tensor (N, C, H, W), or (N, C, D, H, W) for a volume, and a
    function that converts back."""
    if isinstance(image, torch.Tensor):
        shape, device, float_dtype = image.shape, image.device, image.dtype
        # detach: the solvers must never write gradients into the caller's tensor.
        batch = as_batch(image.detach(), "image", volume)
        return batch, lambda u: u.reshape(shape).to(device=device, dtype=float_dtype)
    if volume and isinstance(image, np.ndarray):
        return _volume_array_to_batch(image)

    from PIL import Image as PILImage

    if isinstance(image, PILImage.Image):
        return _pil_to_batch(image)

    if isinstance(image, np.ndarray):
        return _array_to_batch(image)
    raise InvalidParameterError(
        f"image must be a numpy array, a PIL image or a torch tensor, got {type(image).__name__}"
    )


def _array_to_batch(array: np.ndarray) -> tuple[torch.Tensor, Any]:
    if array.ndim not in (2, 3):
        raise InvalidParameterError(
            f"image array must be (H, W) or (H, W, C), got shape {array.shape}"
        )
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise InvalidParameterError(f"image array must be numeric, got dtype {array.dtype}")
    values = to_float(array)
    hwc = values if values.ndim == 3 else values[:, :, None]
    batch = torch.from_numpy(np.ascontiguousarray(hwc.transpose(2, 0, 1)))[None]
    dtype = array.dtype

    def back(u: torch.Tensor) -> np.ndarray:
        out = u[0].permute(1, 2, 0).cpu().numpy()
        out = out if array.ndim == 3 else out[:, :, 0]
        return from_float(out, dtype)

    return batch, back


def _volume_array_to_batch(array: np.ndarray) -> tuple[torch.Tensor, Any]:
    """A (D, H, W) or (D, H, W, C) array as a batch (1, C, D, H, W)."""
    if array.ndim not in (3, 4):
        raise InvalidParameterError(
            f"volume array must be (D, H, W) or (D, H, W, C), got shape {array.shape}"
        )
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise InvalidParameterError(f"image array must be numeric, got dtype {array.dtype}")
    values = to_float(array)
    dhwc = values if values.ndim == 4 else values[..., None]
    batch = torch.from_numpy(np.ascontiguousarray(dhwc.transpose(3, 0, 1, 2)))[None]

    def back(u: torch.Tensor) -> np.ndarray:
        out = u[0].permute(1, 2, 3, 0).cpu().numpy()
        return from_float(out if array.ndim == 4 else out[..., 0], array.dtype)

    return batch, back


def _pil_to_batch(image: Any) -> tuple[torch.Tensor, Any]:
    from PIL import Image as PILImage

    mode = image.mode
    alpha = None
    if mode in ("RGBA", "LA"):
        alpha = image.getchannel("A")
        image = image.convert("RGB" if mode == "RGBA" else "L")
    elif mode in ("P", "1", "CMYK", "YCbCr", "HSV", "LAB"):
        image = image.convert("RGB" if mode != "1" else "L")
    array = np.asarray(image)
    batch, back_array = _array_to_batch(array)

    def back(u: torch.Tensor) -> Any:
        out = PILImage.fromarray(back_array(u))
        if alpha is not None:
            out.putalpha(alpha)
        return out

    return batch, back
