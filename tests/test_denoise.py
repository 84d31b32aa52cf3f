"""The public denoise(): types in and out, options, and quality on a real image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import tvdenoise as tvd
from tvdenoise.errors import InvalidParameterError


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def test_denoise_float_array_improves_psnr_and_keeps_type(camera_crop) -> None:
    clean, noisy = camera_crop
    result = tvd.denoise(noisy, weight=0.1)
    assert isinstance(result, np.ndarray)
    assert result.dtype == np.float64 and result.shape == noisy.shape
    assert _psnr(result, clean) > _psnr(noisy, clean) + 5


def test_denoise_uint8_array_returns_uint8(camera_crop) -> None:
    _, noisy = camera_crop
    as_uint8 = np.clip(np.round(noisy * 255), 0, 255).astype(np.uint8)
    result = tvd.denoise(as_uint8, weight=0.1)
    assert result.dtype == np.uint8 and result.shape == as_uint8.shape
    # Same answer as denoising the scaled floats, up to rounding.
    expected = tvd.denoise(as_uint8 / 255.0, weight=0.1)
    assert np.abs(result / 255.0 - expected).max() <= 0.5 / 255 + 1e-3


def test_denoise_pil_rgba_keeps_alpha_and_mode(astronaut_crop) -> None:
    _, noisy = astronaut_crop
    rgb = np.clip(np.round(noisy * 255), 0, 255).astype(np.uint8)
    alpha = np.random.default_rng(0).integers(0, 256, rgb.shape[:2], dtype=np.uint8)
    image = Image.fromarray(np.dstack([rgb, alpha]), mode="RGBA")
    result = tvd.denoise(image, weight=0.1)
    assert isinstance(result, Image.Image) and result.mode == "RGBA"
    assert np.array_equal(np.asarray(result)[:, :, 3], alpha)
    assert not np.array_equal(np.asarray(result)[:, :, :3], rgb)


@pytest.mark.parametrize("shape", [(16, 20), (3, 16, 20), (2, 3, 16, 20)])
def test_denoise_tensor_keeps_shape_dtype(shape: tuple[int, ...]) -> None:
    x = torch.rand(shape, dtype=torch.float64)
    result, record = tvd.denoise(x, weight=0.05, return_record=True)
    assert isinstance(result, torch.Tensor)
    assert result.shape == x.shape and result.dtype == torch.float64
    assert record.converged and record.iterations > 0


def test_channelwise_denoise_matches_per_channel_grey_denoise(astronaut_crop) -> None:
    _, noisy = astronaut_crop
    colour = tvd.denoise(
        noisy, weight=0.1, color="channelwise", tol=1e-7, max_iter=20000, dtype=torch.float64
    )
    for c in range(3):
        grey = tvd.denoise(
            noisy[:, :, c], weight=0.1, tol=1e-7, max_iter=20000, dtype=torch.float64
        )
        assert np.abs(colour[:, :, c] - grey).max() < 2e-3


def test_record_reports_local_minimum_for_beta_below_one(camera_crop) -> None:
    _, noisy = camera_crop
    _, record = tvd.denoise(noisy[:48, :48], beta=0.7, return_record=True, max_iter=500)
    assert record.local_minimum and record.solver == "accelerated"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"weight": -0.1}, r"weight must be > 0, got -0\.1"),
        ({"weight": 0}, "weight must be > 0"),
        ({"beta": 0}, "beta must be > 0"),
        ({"solver": "newton"}, "solver must be one of auto, chambolle_pock"),
        ({"fidelity": "huber"}, "fidelity must be one of l2"),
        ({"max_iter": 0}, "max_iter must be an integer >= 1"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_denoise_rejects_bad_options(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        tvd.denoise(np.zeros((8, 8)), **kwargs)


def test_denoise_rejects_nan_and_bad_types() -> None:
    bad = np.zeros((8, 8))
    bad[2, 2] = np.nan
    with pytest.raises(InvalidParameterError, match="NaN"):
        tvd.denoise(bad)
    with pytest.raises(InvalidParameterError, match="numpy array, a PIL image or a torch tensor"):
        tvd.denoise([[0.0, 1.0]])
    with pytest.raises(InvalidParameterError, match="floating-point"):
        tvd.denoise(torch.zeros(4, 4, dtype=torch.int32))


def test_chambolle_pock_refuses_other_beta() -> None:
    with pytest.raises(InvalidParameterError, match="needs beta = 1"):
        tvd.denoise(np.zeros((8, 8)), beta=2.0, solver="chambolle_pock")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_cuda_and_cpu_results_agree(camera_crop) -> None:
    _, noisy = camera_crop
    cpu = tvd.denoise(torch.from_numpy(noisy).float(), tol=1e-6)
    gpu = tvd.denoise(torch.from_numpy(noisy).float().cuda(), tol=1e-6, device="cuda")
    assert gpu.device.type == "cuda"
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-4)


def test_denoise_never_writes_gradients_into_the_callers_tensor() -> None:
    x = torch.rand(1, 1, 12, 12, requires_grad=True)
    tvd.denoise(x, solver="gd", max_iter=5)
    assert x.grad is None


def test_descent_solvers_at_beta_one_use_smoothing_and_converge(camera_crop) -> None:
    _, noisy = camera_crop
    exact = tvd.denoise(noisy, weight=0.1, tol=1e-6)
    smooth, record = tvd.denoise(noisy, weight=0.1, solver="accelerated", return_record=True)
    assert record.converged and record.eps == pytest.approx(1e-3)
    # eps = 1e-3 barely moves the minimiser (differences are ~0.1 at the noise scale).
    assert np.abs(smooth - exact).max() < 0.02
