"""Volumes (N, C, D, H, W): 3-D differences, per-axis spacing, TV, TVLoss and the solvers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.fft import dctn, idctn

import tvdenoise
from tvdenoise.errors import InvalidParameterError
from tvdenoise.fidelity import L2Fidelity
from tvdenoise.ops import divergence, gradient
from tvdenoise.solvers import Problem, solve


def test_gradient_divergence_adjoint_in_3d_with_spacing() -> None:
    generator = torch.Generator().manual_seed(0)
    u = torch.randn(2, 3, 4, 5, 6, dtype=torch.float64, generator=generator)
    p = torch.randn(2, 3, 3, 4, 5, 6, dtype=torch.float64, generator=generator)
    spacing = (2.5, 1.0, 0.5)
    lhs = (gradient(u, 3, spacing) * p).sum()
    rhs = -(u * divergence(p, 3, spacing)).sum()
    assert float(lhs) == pytest.approx(float(rhs), rel=1e-12)
    q = torch.randn(2, 3, 6, 4, 5, 6, dtype=torch.float64, generator=generator)
    lhs = (gradient(u, 3, spacing, symmetric=True) * q).sum()
    rhs = -(u * divergence(q, 3, spacing, symmetric=True)).sum()
    assert float(lhs) == pytest.approx(float(rhs), rel=1e-12)


def test_volume_of_identical_slices_has_depth_times_slice_tv() -> None:
    slice_ = torch.rand(2, 7, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    volume = slice_[None, :, None].expand(1, 2, 5, 7, 8)
    for tv in ("isotropic", "anisotropic"):
        for color in ("vectorial", "channelwise"):
            expected = 5 * tvdenoise.total_variation(slice_, tv=tv, color=color)
            got = tvdenoise.total_variation(volume, tv=tv, color=color)
            assert got.shape == (1,)
            assert float(got[0]) == pytest.approx(float(expected), rel=1e-12)


def test_z_ramp_tv_is_divided_by_the_z_step() -> None:
    # u = 0.3 z: D_z u = 0.3 / dz on the first D - 1 slices, other differences 0.
    d, h, w = 4, 3, 5
    volume = (0.3 * torch.arange(d, dtype=torch.float64))[:, None, None].expand(d, h, w)
    volume = volume[None, None]
    tv = tvdenoise.total_variation(volume, spacing=(2.0, 1.0, 1.0))
    assert float(tv[0]) == pytest.approx((d - 1) * h * w * 0.3 / 2.0)
    mean = tvdenoise.total_variation(volume, tv="anisotropic", reduction="mean", spacing=(2, 1, 1))
    assert float(mean[0]) == pytest.approx(0.3 / 2.0)  # z's average over its (D - 1) H W terms


def test_unit_spacing_changes_nothing_on_images() -> None:
    x = torch.rand(2, 3, 9, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    assert torch.equal(tvdenoise.total_variation(x, spacing=(1, 1)), tvdenoise.total_variation(x))


def test_tvloss_on_volumes_has_finite_gradients() -> None:
    x = torch.zeros(2, 1, 3, 4, 4, requires_grad=True)
    loss = tvdenoise.TVLoss(spacing=(3.0, 1.0, 1.0))(x + torch.linspace(0, 1, 4))
    loss.backward()
    assert loss.dim() == 0 and x.grad is not None and bool(torch.isfinite(x.grad).all())


def test_wrong_spacing_length_is_refused() -> None:
    with pytest.raises(InvalidParameterError, match="spacing"):
        tvdenoise.total_variation(torch.zeros(1, 1, 3, 4, 4), spacing=(1.0, 1.0))
    with pytest.raises(InvalidParameterError, match="spacing"):
        tvdenoise.denoise(np.zeros((4, 4)), spacing=(1.0, 0.0))


def _neumann_dct_solution_3d(
    f: np.ndarray, weight: float, spacing: tuple[float, ...]
) -> np.ndarray:
    """(I - 2 weight sum_k Laplacian_k / h_k^2) u = f, diagonal in the 3-D DCT-II."""
    eigen = np.zeros(f.shape)
    for axis, (n, step) in enumerate(zip(f.shape, spacing, strict=True)):
        k = (2 - 2 * np.cos(np.pi * np.arange(n) / n)) / step**2
        eigen = eigen + k.reshape([-1 if a == axis else 1 for a in range(3)])
    return idctn(dctn(f, norm="ortho") / (1 + 2 * weight * eigen), norm="ortho")


def test_beta2_volume_matches_3d_dct_closed_form() -> None:
    f = np.random.default_rng(4).random((6, 10, 12))
    spacing = (3.0, 1.0, 1.0)
    expected = _neumann_dct_solution_3d(f, 0.5, spacing)
    problem = Problem(
        torch.from_numpy(f)[None, None],
        0.5,
        2.0,
        "isotropic",
        "vectorial",
        L2Fidelity(),
        spacing=spacing,
    )
    u, record = solve(problem, max_iter=5000, tol=1e-12)
    assert record.converged
    assert np.abs(u[0, 0].numpy() - expected).max() <= 1e-5


def test_huge_z_step_decouples_slices(camera_crop) -> None:
    # With dz -> infinity the z term vanishes: the volume result is the 2-D result per slice.
    _, noisy = camera_crop
    stack = np.stack([noisy[:32, :32], noisy[32:64, :32], noisy[64:96, :32]])
    volume = tvdenoise.denoise(stack, weight=0.1, spacing=(1e6, 1.0, 1.0), tol=1e-6)
    for k in range(3):
        slice_ = tvdenoise.denoise(stack[k], weight=0.1, tol=1e-6)
        assert np.abs(volume[k] - slice_).max() <= 2e-3


def test_volume_denoising_uses_the_z_neighbours(camera_crop) -> None:
    clean, _ = camera_crop
    clean = clean[:48, :48]
    rng = np.random.default_rng(6)
    stack = np.stack([clean] * 4) + 25 / 255 * rng.standard_normal((4, 48, 48))
    psnr = lambda u: 10 * np.log10(1 / np.mean((u - clean) ** 2))  # noqa: E731
    per_slice = np.stack([tvdenoise.denoise(s, weight=0.1) for s in stack])
    volume, record = tvdenoise.denoise(
        torch.from_numpy(stack)[None], weight=0.1, volume=True, return_record=True
    )
    from tvdenoise.solvers import rof_volume

    # The fused volume kernel where it compiles, else the generic primal-dual solver.
    expected = "rof" if rof_volume.load() is not None else "chambolle_pock"
    assert record.solver == expected and record.converged
    assert volume.shape == (1, 4, 48, 48)
    # Measured: 30.45 dB as a volume, 29.81 dB slice by slice, both at weight 0.1.
    assert psnr(volume[0].numpy()) > psnr(per_slice) + 0.4


@pytest.mark.parametrize("fidelity", ["l1", "poisson"])
@pytest.mark.parametrize("beta", [1.0, 1.5])
def test_other_fidelities_solve_volumes(fidelity: str, beta: float) -> None:
    rng = np.random.default_rng(9)
    stack = rng.poisson(4.0, (3, 12, 12)).astype(np.float32) / 4.0
    u, record = tvdenoise.denoise(
        stack,
        weight=0.5,
        beta=beta,
        fidelity=fidelity,
        spacing=(2.0, 1.0, 1.0),
        return_record=True,
        max_iter=3000,
    )
    assert u.shape == stack.shape and np.isfinite(u).all()
    assert record.converged
    assert tvdenoise.total_variation(torch.from_numpy(u)[None, None]) < tvdenoise.total_variation(
        torch.from_numpy(stack)[None, None]
    )


def test_symmetric_volume_solve_turns_with_the_volume() -> None:
    # Flipping all three axes swaps the two stencils of symmetric TV: the exact solver's
    # result flips with the volume, with a z-step in the model.
    f = torch.from_numpy(np.random.default_rng(5).random((5, 8, 9)))[None, None]
    results = []
    for volume in (f, f.flip(-3, -2, -1)):
        problem = Problem(
            volume, 0.2, 1.0, "symmetric", "vectorial", L2Fidelity(), spacing=(2.0, 1.0, 1.0)
        )
        u, record = solve(problem, "chambolle_pock", max_iter=20000, tol=1e-9)
        assert record.converged
        results.append(u)
    assert float((results[0] - results[1].flip(-3, -2, -1)).abs().max()) <= 1e-5
