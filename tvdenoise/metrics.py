"""Image quality against a clean reference: PSNR and SSIM, in numpy (no torch import).

Both follow scikit-image's ``skimage.metrics`` conventions, so figures compare with the
benchmarks and the literature: ``data_range`` is given explicitly (1 for images scaled to
[0, 1]), and an ``(H, W, C)`` image is treated as C channels (SSIM is averaged over them),
never as a volume.
"""

from __future__ import annotations

import math

import numpy as np

from ._validate import positive
from .errors import InvalidParameterError

__all__ = ["psnr", "ssim"]

# The constants of Wang et al. (2004) and scikit-image's defaults.
_SSIM_WINDOW = 7
_SSIM_K1 = 0.01
_SSIM_K2 = 0.03


def _pair(image: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(image, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape:
        raise InvalidParameterError(
            f"image and reference must have the same shape, got {a.shape} and {b.shape}"
        )
    if a.ndim not in (2, 3) or a.size == 0:
        raise InvalidParameterError(f"images must be (H, W) or (H, W, C), got shape {a.shape}")
    return a, b


def psnr(image: np.ndarray, reference: np.ndarray, *, data_range: float) -> float:
    """Peak signal-to-noise ratio of ``image`` against ``reference``, in dB.

    ``PSNR = 10 log10(data_range^2 / MSE)`` with the mean squared error over all pixels and
    channels (as ``skimage.metrics.peak_signal_noise_ratio``).

    Parameters
    ----------
    image, reference : numpy.ndarray
        Same shape, ``(H, W)`` or ``(H, W, C)``.
    data_range : float
        The span of possible values, > 0: 1 for images scaled to [0, 1], 255 for uint8.

    Returns
    -------
    float
        The PSNR in dB; ``inf`` for identical images.

    Raises
    ------
    InvalidParameterError
        For different shapes, an unsupported shape, or a non-positive ``data_range``.

    Examples
    --------
    >>> import numpy as np
    >>> round(psnr(np.full((4, 4), 0.1), np.zeros((4, 4)), data_range=1.0), 6)
    20.0
    """
    data_range = positive("data_range", data_range)
    a, b = _pair(image, reference)
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / mse)


def window_sums(values: np.ndarray, height: int, width: int) -> np.ndarray:
    """Sums of a 2-D array over every ``height`` x ``width`` window lying inside it.

    Entry ``[i, j]`` is the sum over rows ``i .. i + height - 1`` and columns
    ``j .. j + width - 1``, computed from a summed-area table in float64.

    >>> window_sums(np.arange(6.0).reshape(2, 3), 2, 2)
    array([[ 8., 12.]])
    """
    table = np.zeros((values.shape[0] + 1, values.shape[1] + 1))
    table[1:, 1:] = np.asarray(values, dtype=np.float64).cumsum(0).cumsum(1)
    return (
        table[height:, width:]
        - table[:-height, width:]
        - table[height:, :-width]
        + table[:-height, :-width]
    )


def _window_means(values: np.ndarray, size: int) -> np.ndarray:
    return window_sums(values, size, size) / (size * size)


def _ssim_channel(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    size = _SSIM_WINDOW
    mean_a = _window_means(a, size)
    mean_b = _window_means(b, size)
    # Sample (co)variances over the window, as scikit-image's default.
    norm = size * size / (size * size - 1)
    var_a = norm * (_window_means(a * a, size) - mean_a**2)
    var_b = norm * (_window_means(b * b, size) - mean_b**2)
    cov = norm * (_window_means(a * b, size) - mean_a * mean_b)
    c1 = (_SSIM_K1 * data_range) ** 2
    c2 = (_SSIM_K2 * data_range) ** 2
    index = ((2 * mean_a * mean_b + c1) * (2 * cov + c2)) / (
        (mean_a**2 + mean_b**2 + c1) * (var_a + var_b + c2)
    )
    return float(index.mean())


def ssim(image: np.ndarray, reference: np.ndarray, *, data_range: float) -> float:
    """Mean structural similarity index of ``image`` against ``reference``.

    The SSIM of Wang et al. with a 7x7 uniform window, sample covariances, K1 = 0.01 and
    K2 = 0.03, averaged over the windows that lie inside the image and over channels: the
    figure ``skimage.metrics.structural_similarity(image, reference, data_range=...,
    channel_axis=-1)`` gives (without ``channel_axis`` for ``(H, W)`` images).

    Parameters
    ----------
    image, reference : numpy.ndarray
        Same shape, ``(H, W)`` or ``(H, W, C)`` with the channels last; at least 7x7.
    data_range : float
        The span of possible values, > 0: 1 for images scaled to [0, 1], 255 for uint8.

    Returns
    -------
    float
        The mean SSIM, at most 1 (1 for identical images).

    Raises
    ------
    InvalidParameterError
        For different shapes, an unsupported shape or one smaller than 7x7, or a
        non-positive ``data_range``.

    References
    ----------
    Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality assessment: from
    error visibility to structural similarity", IEEE Trans. Image Process. 13 (2004).

    Examples
    --------
    >>> import numpy as np
    >>> ramp = np.linspace(0, 1, 64).reshape(8, 8)
    >>> ssim(ramp, ramp, data_range=1.0)
    1.0
    """
    data_range = positive("data_range", data_range)
    a, b = _pair(image, reference)
    if min(a.shape[:2]) < _SSIM_WINDOW:
        raise InvalidParameterError(
            f"SSIM needs images of at least {_SSIM_WINDOW}x{_SSIM_WINDOW} pixels, "
            f"got shape {a.shape}"
        )
    if a.ndim == 2:
        return _ssim_channel(a, b, data_range)
    values = [_ssim_channel(a[:, :, c], b[:, :, c], data_range) for c in range(a.shape[2])]
    return float(np.mean(values))
