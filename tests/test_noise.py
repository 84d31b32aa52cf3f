"""Noise estimation against synthetic images whose noise level is known by construction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tvdenoise as tvd
from tvdenoise.errors import InvalidParameterError
from tvdenoise.noise import NOISE_METHODS, estimate_sigma


def _noisy(clean: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    return clean + sigma * np.random.default_rng(seed).standard_normal(clean.shape)


def _flat(n: int = 128) -> np.ndarray:
    return np.full((n, n), 0.5)


def _gradient(n: int = 128) -> np.ndarray:
    return np.add.outer(np.linspace(0, 0.5, n), np.linspace(0, 0.5, n))


def _textured(n: int = 128) -> np.ndarray:
    """Smooth stripes and blocks: structure the estimator must not count as noise."""
    y, x = np.mgrid[0:n, 0:n]
    stripes = 0.2 * np.sin(2 * np.pi * x / 16) * np.cos(2 * np.pi * y / 23)
    blocks = 0.3 * ((x // 32 + y // 32) % 2)
    return 0.3 + stripes + blocks


@pytest.mark.parametrize("make", [_flat, _gradient, _textured])
@pytest.mark.parametrize("sigma", [0.02, 0.05, 0.1])
def test_default_estimator_recovers_known_sigma(make, sigma: float) -> None:
    estimate = estimate_sigma(_noisy(make(), sigma))
    assert estimate == pytest.approx(sigma, rel=0.08)


@pytest.mark.parametrize("method", NOISE_METHODS)
def test_every_method_is_unbiased_on_pure_noise(method: str) -> None:
    # Flat image: each formula's constant (sqrt(pi/2)/6, 1/0.6745, the eigenvalue edge) must
    # make the estimate sigma itself.
    assert estimate_sigma(_noisy(_flat(256), 0.05, 3), method=method) == pytest.approx(
        0.05, rel=0.04
    )


def test_weak_texture_threshold_matches_the_gamma_quantile() -> None:
    from scipy.special import gammaincinv

    from tvdenoise.noise import _WEAK_THRESHOLD, texture_operator

    gram = texture_operator(7).T @ texture_operator(7)
    rank, trace = np.linalg.matrix_rank(gram), np.trace(gram)
    expected = gammaincinv(rank / 2, 1 - 1e-6) * 2 * trace / rank
    assert float(expected) == pytest.approx(_WEAK_THRESHOLD)


def test_colour_pooled_and_per_channel() -> None:
    clean = np.dstack([_gradient(), _textured(), _flat()])
    sigmas = np.array([0.02, 0.04, 0.08])
    noisy = clean + sigmas * np.random.default_rng(1).standard_normal(clean.shape)
    per_channel = estimate_sigma(noisy, per_channel=True)
    assert np.allclose(per_channel, sigmas, rtol=0.08)
    assert estimate_sigma(noisy) == pytest.approx(np.sqrt(np.mean(sigmas**2)), rel=0.08)


def test_uint8_and_tensor_inputs_use_the_unit_scale() -> None:
    noisy = np.clip(_noisy(_gradient(), 10 / 255, 2), 0, 1)
    as_uint8 = np.round(noisy * 255).astype(np.uint8)
    assert estimate_sigma(as_uint8) == pytest.approx(10 / 255, rel=0.08)
    tensor = torch.from_numpy(noisy).float()[None]
    assert estimate_sigma(tensor) == pytest.approx(estimate_sigma(noisy), rel=1e-3)


def test_public_name_and_refusals() -> None:
    assert tvd.estimate_sigma is estimate_sigma
    with pytest.raises(InvalidParameterError, match="16x16"):
        estimate_sigma(np.zeros((8, 40)))
    with pytest.raises(InvalidParameterError, match="method"):
        estimate_sigma(_flat(), method="oracle")
