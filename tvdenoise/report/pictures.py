"""Small PNG pictures of an image for the HTML report: thumbnails, residual, 1:1 crops."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validate import positive_int
from ..errors import InvalidParameterError
from ..metrics import window_sums


@dataclass(frozen=True)
class ImagePictures:
    """Small PNG pictures of one image for the HTML report (made by :func:`make_pictures`).

    Attributes
    ----------
    input_png, output_png, residual_png : bytes
        Thumbnails (longest side at most ``max_size``) of the noisy input, the denoised
        output, and the residual ``input - output`` mapped so that 0 is mid-grey and
        ``+-residual_scale`` are white and black.
    crop_input_png, crop_output_png : bytes
        The same window of input and output at full resolution (1:1, not resampled).
    thumbnail_size : tuple of int
        ``(width, height)`` of the thumbnails.
    crop : tuple of int
        ``(top, left, height, width)`` of the crop in the full image.
    residual_scale : float
        The absolute residual shown as full white / black (the 99.5th percentile of
        ``|input - output|``).
    """

    input_png: bytes
    output_png: bytes
    residual_png: bytes
    crop_input_png: bytes
    crop_output_png: bytes
    thumbnail_size: tuple[int, int]
    crop: tuple[int, int, int, int]
    residual_scale: float


def _as_hwc(name: str, array: np.ndarray) -> np.ndarray:
    values = np.asarray(array, dtype=np.float64)
    if values.ndim == 3 and values.shape[2] == 1:
        values = values[:, :, 0]
    if not (values.ndim == 2 or (values.ndim == 3 and values.shape[2] == 3)):
        raise InvalidParameterError(
            f"{name} must be (H, W), (H, W, 1) or (H, W, 3), got shape {values.shape}"
        )
    return values


def _png(values: np.ndarray) -> bytes:
    from ..image_io import encode_image, from_float

    return encode_image(from_float(np.clip(values, 0.0, 1.0), np.uint8), "PNG")


def _thumbnail(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    from ..image_io import from_float

    pixels = from_float(np.clip(values, 0.0, 1.0), np.uint8)
    if (pixels.shape[1], pixels.shape[0]) == size:
        return pixels / 255.0
    small = Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS)
    return np.asarray(small) / 255.0


def _most_textured(values: np.ndarray, height: int, width: int) -> tuple[int, int]:
    """Top-left corner of the window with the largest total gradient magnitude."""
    grey = values if values.ndim == 2 else values.mean(axis=2)
    gradient = np.zeros_like(grey)
    gradient[:, :-1] += np.abs(np.diff(grey, axis=1))
    gradient[:-1, :] += np.abs(np.diff(grey, axis=0))
    sums = window_sums(gradient, height, width)
    top, left = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(top), int(left)


def make_pictures(
    noisy: np.ndarray,
    denoised: np.ndarray,
    *,
    max_size: int = 256,
    crop_size: int = 96,
) -> ImagePictures:
    """Thumbnails, residual and a 1:1 crop of one image, as PNG bytes for the HTML report.

    Call it while the images are in memory and keep only the result (a few hundred KB).

    Parameters
    ----------
    noisy, denoised : numpy.ndarray
        Float images in [0, 1] (values outside are clipped for display), ``(H, W)``,
        ``(H, W, 1)`` or ``(H, W, 3)``, same shape.
    max_size : int
        Longest side of the thumbnails, at most 256 (images already smaller are not
        enlarged).
    crop_size : int
        Side of the full-resolution crop (smaller for smaller images). The crop is the
        window where the denoised image has the largest total gradient magnitude: where
        structure survived, which is where over- or under-smoothing shows.

    Returns
    -------
    ImagePictures

    Raises
    ------
    InvalidParameterError
        For different or unsupported shapes, or sizes out of range.

    Examples
    --------
    >>> import numpy as np
    >>> pictures = make_pictures(np.zeros((300, 600)), np.zeros((300, 600)))
    >>> pictures.thumbnail_size, pictures.crop[2:]
    ((256, 128), (96, 96))
    """
    max_size = positive_int("max_size", max_size)
    if max_size > 256:
        raise InvalidParameterError(f"max_size must be at most 256, got {max_size}")
    crop_size = positive_int("crop_size", crop_size)
    noisy_values = _as_hwc("noisy", noisy)
    denoised_values = _as_hwc("denoised", denoised)
    if noisy_values.shape != denoised_values.shape:
        raise InvalidParameterError(
            f"noisy and denoised must have the same shape, got {noisy_values.shape} and "
            f"{denoised_values.shape}"
        )
    height, width = noisy_values.shape[:2]
    scale = min(1.0, max_size / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))

    residual = noisy_values - denoised_values
    residual_scale = float(np.percentile(np.abs(residual), 99.5))
    if not residual_scale > 0:
        residual_scale = 1.0
    stretched = 0.5 + residual / (2.0 * residual_scale)

    crop_height, crop_width = min(crop_size, height), min(crop_size, width)
    top, left = _most_textured(denoised_values, crop_height, crop_width)
    window = (slice(top, top + crop_height), slice(left, left + crop_width))
    return ImagePictures(
        input_png=_png(_thumbnail(noisy_values, size)),
        output_png=_png(_thumbnail(denoised_values, size)),
        residual_png=_png(_thumbnail(stretched, size)),
        crop_input_png=_png(noisy_values[window]),
        crop_output_png=_png(denoised_values[window]),
        thumbnail_size=size,
        crop=(top, left, crop_height, crop_width),
        residual_scale=residual_scale,
    )
