"""Estimate the standard deviation of additive Gaussian noise in an image, without a reference.

Four estimators, all on images scaled as :func:`tvdenoise.denoise` scales them (integers to
[0, 1] by their dtype's maximum, floats as they are):

- ``"weak_texture"`` (default): Liu, Tanaka & Okutomi (2013). Keep the 7x7 patches whose
  texture strength (sum of squared differences inside the patch) is what noise alone would
  give, and take sigma^2 as the smallest eigenvalue of their covariance; repeat twice with the
  new sigma.
- ``"pca"``: Chen, Zhu & Heng (2015). The covariance of all 8x8 patches has, for
  natural images, a few large eigenvalues (structure) and many that equal sigma^2 (noise).
  Starting from the smallest, the largest set of eigenvalues whose mean equals its median
  (as many above as below) is taken as the noise set; sigma^2 is their mean.
- ``"mad"``: Donoho's wavelet rule, ``median(|HH|) / 0.6745`` on the diagonal detail of the
  orthonormal Haar transform (``HH = (a - b - c + d) / 2`` on 2x2 blocks).
- ``"laplacian"``: Immerkaer (1996), ``sqrt(pi / 2) / (6 (H - 2) (W - 2)) * sum |I * M|``
  with ``M = [[1, -2, 1], [-2, 4, -2], [1, -2, 1]]``.

``benchmarks/bench_auto_weight.py`` measures them on scikit-image's test images with added
noise: ``weak_texture`` alone meets the project's target there (median relative error 6 %
at sigma 5 and within 4.2 % at sigma 10 to 50 of 255); the others overestimate on textured
images (grass, coins) at low noise, ``pca`` the most (see benchmarks/RESULTS.md).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import torch

from . import _validate
from .conversion import to_batch
from .errors import InvalidParameterError

__all__ = ["NOISE_METHODS", "estimate_sigma"]

NOISE_METHODS = ("weak_texture", "pca", "mad", "laplacian")

_PATCH = 8
# Patches used by the PCA estimator at most; larger images use a strided subset of patches.
_MAX_PATCHES = 1 << 17


def estimate_sigma(image: Any, method: str = "weak_texture", per_channel: bool = False) -> Any:
    """Estimate the standard deviation of additive white Gaussian noise in ``image``.

    Parameters
    ----------
    image : numpy.ndarray, PIL.Image.Image or torch.Tensor
        Anything :func:`tvdenoise.denoise` accepts: ``(H, W)`` or ``(H, W, C)`` arrays, PIL
        images (alpha ignored), tensors ``(H, W)``, ``(C, H, W)`` or ``(N, C, H, W)``. At least
        16x16 pixels.
    method : {"weak_texture", "pca", "mad", "laplacian"}
        The estimator (see the module docstring).
    per_channel : bool
        Return one estimate per channel (a list) instead of one for the image.

    Returns
    -------
    float or list of float
        Sigma on the image's [0, 1] scale (multiply by 255 for 8-bit units). For colour
        images and batches the single value is pooled: the square root of the mean of the
        per-channel (and per-sample) variances, which is right when every channel carries the
        same noise, as :func:`denoise`'s single weight assumes.

    Raises
    ------
    InvalidParameterError
        For an unsupported image, an image smaller than 16x16, or an unknown method.

    References
    ----------
    X. Liu, M. Tanaka, M. Okutomi, "Single-image noise level estimation for blind denoising",
    IEEE Trans. Image Process. 22 (2013). G. Chen, F. Zhu, P. A. Heng, "An efficient
    statistical method for image noise level estimation", ICCV 2015. D. L. Donoho,
    I. M. Johnstone, "Ideal spatial adaptation by wavelet shrinkage", Biometrika 81 (1994).
    J. Immerkaer, "Fast noise variance estimation", Computer Vision and Image Understanding
    64 (1996).

    Examples
    --------
    >>> import numpy as np
    >>> flat = 0.5 + 0.1 * np.random.default_rng(0).standard_normal((128, 128))
    >>> round(estimate_sigma(flat), 2)
    0.1
    """
    method = _validate.choice("method", method, NOISE_METHODS)
    batch, _ = to_batch(image)
    values = batch.detach().to("cpu", dtype=batch.dtype).double().numpy()
    n, c, h, w = values.shape
    if h < 16 or w < 16:
        raise InvalidParameterError(
            f"image must be at least 16x16 pixels to estimate its noise, got {h}x{w}; "
            "give a fixed weight, or the noise sigma"
        )
    if not np.isfinite(values).all():
        raise InvalidParameterError("image contains NaN or infinite values")
    estimator = _ESTIMATORS[method]
    if method == "weak_texture":
        # The pooled variance averages n * c estimates: share the patch budget among them.
        budget = max(_WEAK_SAMPLES // (n * c), _WEAK_MIN_SAMPLES)
        estimator = functools.partial(_sigma_weak_texture, samples=budget)
    variances = np.array([[estimator(values[i, k]) ** 2 for k in range(c)] for i in range(n)])
    if per_channel:
        return [float(s) for s in np.sqrt(variances.mean(axis=0))]
    return float(math.sqrt(variances.mean()))


def _sigma_pca(channel: np.ndarray) -> float:
    """Chen-Zhu-Heng: sigma from the eigenvalues of the 8x8 patch covariance."""
    h, w = channel.shape
    count = (h - _PATCH + 1) * (w - _PATCH + 1)
    stride = max(1, math.ceil(math.sqrt(count / _MAX_PATCHES)))
    windows = np.lib.stride_tricks.sliding_window_view(channel, (_PATCH, _PATCH))
    patches = windows[::stride, ::stride].reshape(-1, _PATCH * _PATCH)
    centred = patches - patches.mean(axis=0)
    covariance = centred.T @ centred / len(centred)
    eigenvalues = np.clip(np.linalg.eigvalsh(covariance), 0.0, None)  # ascending
    for size in range(len(eigenvalues), 0, -1):
        tail = eigenvalues[:size]
        mean = tail.mean()
        if np.count_nonzero(tail > mean) == np.count_nonzero(tail < mean):
            return float(math.sqrt(mean))
    return float(math.sqrt(eigenvalues[0]))


def _sigma_mad(channel: np.ndarray) -> float:
    """Donoho's MAD rule on the diagonal Haar detail (orthonormal, so variance sigma^2)."""
    h, w = channel.shape
    x = channel[: h - h % 2, : w - w % 2]
    diagonal = (x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) / 2.0
    return float(np.median(np.abs(diagonal)) / 0.6744897501960817)


def _sigma_laplacian(channel: np.ndarray) -> float:
    """Immerkaer's estimator: the mean absolute response to a Laplacian difference mask."""
    x = channel
    response = (
        x[:-2, :-2]
        - 2 * x[:-2, 1:-1]
        + x[:-2, 2:]
        - 2 * x[1:-1, :-2]
        + 4 * x[1:-1, 1:-1]
        - 2 * x[1:-1, 2:]
        + x[2:, :-2]
        - 2 * x[2:, 1:-1]
        + x[2:, 2:]
    )
    h, w = x.shape
    return float(math.sqrt(math.pi / 2.0) * np.abs(response).sum() / (6.0 * (h - 2) * (w - 2)))


def texture_operator(patch: int) -> np.ndarray:
    """Central differences inside a ``patch`` x ``patch`` patch, both directions stacked."""
    eye = np.eye(patch)
    central = (np.eye(patch, k=1) - np.eye(patch, k=-1))[1:-1] / 2.0
    return np.vstack([np.kron(eye, central), np.kron(central, eye)])


# A 7x7 patch of noise of variance s2 has texture strength ||D y||^2 (D = texture_operator(7))
# distributed about as s2 * Gamma(shape r / 2, scale 2 t / r), r = 45 and t = 35 the rank and
# trace of D^T D (Liu et al.'s approximation). Patches below s2 times this bound (its
# 1 - 1e-6 quantile, scipy.special.gammaincinv(45 / 2, 1 - 1e-6) * 2 * 35 / 45, a constant
# because numpy lacks the inverse gamma function; tests/test_noise.py checks it) are weak.
_WEAK_PATCH = 7
_WEAK_THRESHOLD = 81.82076743668523
# Patches in the covariances of the weak-texture estimator at most, shared among the channels
# (and samples) whose variances are pooled, but at least _WEAK_MIN_SAMPLES per channel.
_WEAK_SAMPLES = 1 << 15
_WEAK_MIN_SAMPLES = 1 << 13


def _sigma_weak_texture(
    channel: np.ndarray, iterations: int = 3, samples: int = _WEAK_SAMPLES
) -> float:
    """Liu-Tanaka-Okutomi: smallest eigenvalue of the covariance of weakly textured patches.

    The texture strength of every 7x7 patch comes from box sums (integral images) of the
    squared central differences, so it costs a few passes over the image; the covariance is
    taken over at most ``samples`` of the selected patches, evenly spaced in raster order.
    """
    patch = _WEAK_PATCH
    x = np.ascontiguousarray(channel, dtype=np.float64)
    h, w = x.shape
    rows, cols = h - patch + 1, w - patch + 1
    # Texture strength ||D y||^2 of the patch at (r, c), D = texture_operator(patch): the
    # squared central differences across (columns c+1..c+patch-2 of rows r..r+patch-1) plus
    # those down (rows r+1..r+patch-2 of columns c..c+patch-1).
    across = np.zeros_like(x)
    across[:, 1:-1] = ((x[:, 2:] - x[:, :-2]) / 2.0) ** 2
    down = np.zeros_like(x)
    down[1:-1, :] = ((x[2:, :] - x[:-2, :]) / 2.0) ** 2
    strength = _box_sums(across, patch, patch - 2, 0, 1, rows, cols) + _box_sums(
        down, patch - 2, patch, 1, 0, rows, cols
    )
    strength = strength.ravel()
    offsets = (np.arange(patch)[:, None] * w + np.arange(patch)[None, :]).ravel()
    flat = x.ravel()

    def smallest_eigenvalue(positions: np.ndarray) -> float:
        if len(positions) > samples:
            positions = positions[np.linspace(0, len(positions) - 1, samples).astype(int)]
        starts = positions // cols * w + positions % cols
        patches = torch.from_numpy(flat[starts[:, None] + offsets[None, :]])
        # Centred in float64, multiplied in float32 (twice as fast; the covariance's
        # eigenvalues span about 1e4 at most, well within float32's precision).
        centred = (patches - patches.mean(dim=0)).float()
        covariance = (centred.T @ centred).double().numpy() / (len(patches) - 1)
        smallest = np.linalg.eigvalsh(covariance)[0]
        # The smallest eigenvalue of a sample covariance of n noise vectors of dimension p
        # sits near sigma^2 (1 - sqrt(p / n))^2 (Marchenko-Pastur's lower edge): undo that.
        return float(max(smallest, 0.0) / (1.0 - math.sqrt(patch * patch / len(patches))) ** 2)

    variance = smallest_eigenvalue(np.arange(rows * cols))
    for _ in range(1, iterations):
        weak = np.flatnonzero(strength < variance * _WEAK_THRESHOLD)
        if len(weak) < 2 * patch * patch:
            break
        variance = smallest_eigenvalue(weak)
    return float(math.sqrt(variance))


def _box_sums(
    values: np.ndarray, height: int, width: int, top: int, left: int, rows: int, cols: int
) -> np.ndarray:
    """``out[r, c] = values[r + top : r + top + height, c + left : c + left + width].sum()``
    for ``r < rows``, ``c < cols``, from an integral image."""
    integral = np.zeros((values.shape[0] + 1, values.shape[1] + 1))
    np.cumsum(np.cumsum(values, axis=0), axis=1, out=integral[1:, 1:])
    r0, c0 = top, left
    r1, c1 = top + height, left + width
    return (
        integral[r1 : r1 + rows, c1 : c1 + cols]
        - integral[r0 : r0 + rows, c1 : c1 + cols]
        - integral[r1 : r1 + rows, c0 : c0 + cols]
        + integral[r0 : r0 + rows, c0 : c0 + cols]
    )


_ESTIMATORS = {
    "weak_texture": _sigma_weak_texture,
    "pca": _sigma_pca,
    "mad": _sigma_mad,
    "laplacian": _sigma_laplacian,
}
assert tuple(_ESTIMATORS) == NOISE_METHODS
