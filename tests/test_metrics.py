"""PSNR and SSIM against scikit-image's implementations (an independent reference)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from tvdenoise.errors import InvalidParameterError
from tvdenoise.metrics import psnr, ssim


def test_psnr_matches_skimage_grey(camera_crop) -> None:
    clean, noisy = camera_crop
    expected = peak_signal_noise_ratio(clean, noisy, data_range=1.0)
    assert psnr(noisy, clean, data_range=1.0) == pytest.approx(expected, abs=1e-10)


def test_psnr_matches_skimage_colour_and_uint8_range(astronaut_crop) -> None:
    clean, noisy = astronaut_crop
    expected = peak_signal_noise_ratio(clean, noisy, data_range=1.0)
    assert psnr(noisy, clean, data_range=1.0) == pytest.approx(expected, abs=1e-10)
    clean8 = np.round(np.clip(clean, 0, 1) * 255).astype(np.uint8)
    noisy8 = np.round(np.clip(noisy, 0, 1) * 255).astype(np.uint8)
    expected8 = peak_signal_noise_ratio(clean8, noisy8, data_range=255)
    assert psnr(noisy8, clean8, data_range=255) == pytest.approx(expected8, abs=1e-10)


def test_psnr_of_known_error_and_identical_images() -> None:
    # A uniform error of 0.01 on a unit range is exactly 40 dB.
    assert psnr(np.full((5, 6), 0.51), np.full((5, 6), 0.5), data_range=1.0) == pytest.approx(40.0)
    assert psnr(np.ones((3, 3)), np.ones((3, 3)), data_range=1.0) == math.inf


def test_ssim_matches_skimage_grey(camera_crop) -> None:
    clean, noisy = camera_crop
    expected = structural_similarity(clean, noisy, data_range=1.0)
    assert ssim(noisy, clean, data_range=1.0) == pytest.approx(expected, abs=1e-9)


def test_ssim_matches_skimage_colour(astronaut_crop) -> None:
    clean, noisy = astronaut_crop
    expected = structural_similarity(clean, noisy, data_range=1.0, channel_axis=-1)
    assert ssim(noisy, clean, data_range=1.0) == pytest.approx(expected, abs=1e-9)


@settings(max_examples=25, deadline=None)
@given(
    height=st.integers(7, 20),
    width=st.integers(7, 20),
    channels=st.sampled_from([0, 1, 3]),
    seed=st.integers(0, 2**16),
    data_range=st.sampled_from([1.0, 2.0, 255.0]),
)
def test_ssim_matches_skimage_on_random_images(
    height: int, width: int, channels: int, seed: int, data_range: float
) -> None:
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels == 0 else (height, width, channels)
    a = rng.uniform(0, data_range, shape)
    b = np.clip(a + rng.normal(0, 0.2 * data_range, shape), 0, data_range)
    axis = None if channels == 0 else -1
    expected = structural_similarity(a, b, data_range=data_range, channel_axis=axis)
    assert ssim(a, b, data_range=data_range) == pytest.approx(expected, abs=1e-9)


def test_metrics_reject_mismatched_shapes_and_bad_range() -> None:
    with pytest.raises(InvalidParameterError, match="same shape"):
        psnr(np.zeros((8, 8)), np.zeros((8, 9)), data_range=1.0)
    with pytest.raises(InvalidParameterError, match="data_range"):
        ssim(np.zeros((8, 8)), np.zeros((8, 8)), data_range=0)
    with pytest.raises(InvalidParameterError, match="at least 7x7"):
        ssim(np.zeros((6, 8)), np.zeros((6, 8)), data_range=1.0)
