"""The masked L2 fidelity and denoise(mask=...): pixels without data are filled in by TV."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tvdenoise as tvd
from tvdenoise.errors import InvalidParameterError
from tvdenoise.fidelity import MASK_FLOOR, MaskedL2Fidelity


def two_halves(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A piecewise-constant image (0.2 | 0.8) and a noisy copy."""
    clean = np.full((32, 32), 0.2, np.float32)
    clean[:, 16:] = 0.8
    noisy = clean + np.random.default_rng(seed).normal(0, 0.05, clean.shape).astype(np.float32)
    return clean, noisy


def test_prox_solves_its_optimality_condition() -> None:
    # argmin_u 1/2 sum w (u - f)^2 + 1/(2 tau) ||u - v||^2: w (u - f) + (u - v) / tau = 0.
    generator = torch.Generator().manual_seed(0)
    w = torch.rand(2, 1, 5, 6, generator=generator, dtype=torch.float64)
    f, v = (torch.randn(2, 3, 5, 6, generator=generator, dtype=torch.float64) for _ in "fv")
    fidelity = MaskedL2Fidelity(w)
    tau = 0.7
    u = fidelity.prox(v, f, tau)
    residual = fidelity.weights * (u - f) + (u - v) / tau
    assert float(residual.abs().max()) < 1e-12


def test_dual_is_the_best_scale_of_the_conjugate() -> None:
    # -G*(s z) with G*(z) = sum z^2 / (2 w) + f z, maximised over s in [0, 1] by brute force.
    generator = torch.Generator().manual_seed(1)
    w = torch.rand(3, 1, 4, 4, generator=generator, dtype=torch.float64) * 0.9 + 0.1
    f = torch.randn(3, 1, 4, 4, generator=generator, dtype=torch.float64)
    z = torch.randn(3, 1, 4, 4, generator=generator, dtype=torch.float64)
    z[1] = -f[1] * w[1] * 0.3  # a sample whose best scale lies inside (0, 1)
    fidelity = MaskedL2Fidelity(w)
    scales = torch.linspace(0, 1, 20001, dtype=torch.float64)
    for sample in range(3):
        conjugate = (scales[:, None] * z[sample].reshape(-1)) ** 2 / (2 * w[sample].reshape(-1))
        conjugate = conjugate + scales[:, None] * (f[sample] * z[sample]).reshape(-1)
        best = float((-conjugate.sum(dim=1)).max())
        assert float(fidelity.dual(f, z)[sample]) == pytest.approx(best, abs=1e-6)


def test_weights_are_floored_and_strong_convexity_is_the_least_weight() -> None:
    fidelity = MaskedL2Fidelity(torch.tensor([[[[0.0, 0.5, 1.0]]]]))
    assert fidelity.strong_convexity == pytest.approx(MASK_FLOOR)
    assert float(fidelity.weights.min()) == pytest.approx(MASK_FLOOR)


def test_all_ones_mask_gives_the_unmasked_minimiser() -> None:
    # Unmasked: the fused rof solver; masked: chambolle_pock on the weighted term. Both exact.
    _, noisy = two_halves()
    plain = tvd.denoise(noisy, weight=0.1, tol=1e-5)
    masked = tvd.denoise(noisy, weight=0.1, tol=1e-5, mask=np.ones(noisy.shape, bool))
    assert np.abs(masked - plain).max() < 2e-3


def test_nan_hole_is_filled_by_tv_and_does_not_pollute_its_neighbours() -> None:
    _, noisy = two_halves()
    holed = noisy.copy()
    holed[12:18, 4:10] = np.nan  # inside the 0.2 half
    out = tvd.denoise(holed, weight=0.1, mask=np.isfinite(holed))
    assert np.isfinite(out).all()
    # TV fills a hole inside a constant region with that constant (the minimiser there).
    assert np.abs(out[12:18, 4:10] - 0.2).max() < 0.02
    # Outside the hole the result is that of the full image, where the hole held data.
    full = tvd.denoise(noisy, weight=0.1)
    outside = np.isfinite(holed)
    assert np.abs(out - full)[outside].mean() < 2e-3


def test_masked_data_values_are_ignored() -> None:
    # A wrong value under a zero mask leaves the result as if the value were right.
    _, noisy = two_halves(2)
    spoiled = noisy.copy()
    spoiled[10:14, 22:26] = 0.0  # in the 0.8 half
    mask = np.ones(noisy.shape, np.float32)
    mask[10:14, 22:26] = 0
    out = tvd.denoise(spoiled, weight=0.1, mask=mask)
    assert np.abs(out[10:14, 22:26] - 0.8).max() < 0.03
    unmasked = tvd.denoise(spoiled, weight=0.1)
    assert np.abs(unmasked[10:14, 22:26] - 0.8).max() > 0.2


def test_colour_images_and_volumes_take_a_mask_without_channels() -> None:
    _, noisy = two_halves()
    colour = np.dstack([noisy, noisy, noisy])
    colour[5, 5] = np.nan
    mask = np.isfinite(colour[..., 0])
    out = tvd.denoise(colour, weight=0.1, mask=mask)
    assert out.shape == colour.shape and np.isfinite(out).all()
    volume = np.stack([noisy[:16, :16]] * 3)
    volume[1, 5, 5] = np.nan
    out = tvd.denoise(volume, weight=0.1, volume=True, mask=np.isfinite(volume))
    assert out.shape == volume.shape and np.isfinite(out).all()


def test_automatic_weight_with_a_mask() -> None:
    _, noisy = two_halves()
    holed = noisy.copy()
    holed[20:23, 20:23] = np.nan
    out, record = tvd.denoise(holed, weight="auto", mask=np.isfinite(holed), return_record=True)
    assert np.isfinite(out).all() and record.weight_choice.weight > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fidelity": "l1"}, "mask works with fidelity l2 only"),
        ({"mask": np.ones((3, 3))}, "does not fit the image"),
        ({"mask": np.full((32, 32), 2.0)}, r"in \[0, 1\]"),
    ],
)
def test_bad_masks_are_refused(kwargs: dict, message: str) -> None:
    _, noisy = two_halves()
    options = {"mask": np.ones(noisy.shape, bool), **kwargs}
    with pytest.raises(InvalidParameterError, match=message):
        tvd.denoise(noisy, weight=0.1, **options)


def test_nan_outside_the_mask_is_refused() -> None:
    _, noisy = two_halves()
    noisy[3, 3] = np.nan
    with pytest.raises(InvalidParameterError, match="NaN"):
        tvd.denoise(noisy, weight=0.1)
    with pytest.raises(InvalidParameterError, match="where the mask is > 0"):
        tvd.denoise(noisy, weight=0.1, mask=np.ones(noisy.shape, bool))
