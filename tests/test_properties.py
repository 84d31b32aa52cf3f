"""Property-based tests (hypothesis): identities that hold for every shape and value."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tvdenoise as tvd
from tvdenoise.ops import divergence, gradient

shapes = st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 9), st.integers(1, 9))
options = st.fixed_dictionaries(
    {
        "tv": st.sampled_from(["isotropic", "anisotropic", "symmetric"]),
        "color": st.sampled_from(["vectorial", "channelwise"]),
        "beta": st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0]),
    }
)


def _tensor(shape: tuple[int, ...], seed: int, scale: float = 1.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return scale * torch.randn(shape, dtype=torch.float64, generator=generator)


@settings(deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**31 - 1))
def test_adjoint_identity_on_any_shape(shape: tuple[int, ...], seed: int) -> None:
    u = _tensor(shape, seed)
    p = _tensor((*shape[:2], 2, *shape[2:]), seed + 1)
    lhs = float((gradient(u) * p).sum())
    rhs = float(-(u * divergence(p)).sum())
    assert abs(lhs - rhs) <= 1e-10 * (1 + abs(lhs))
    # With the backward stencil appended (symmetric TV): the same identity.
    q = _tensor((*shape[:2], 4, *shape[2:]), seed + 2)
    lhs = float((gradient(u, symmetric=True) * q).sum())
    rhs = float(-(u * divergence(q, symmetric=True)).sum())
    assert abs(lhs - rhs) <= 1e-10 * (1 + abs(lhs))


@settings(deadline=None)
@given(
    shape=shapes,
    seed=st.integers(0, 2**31 - 1),
    opts=options,
    shift=st.floats(-5, 5),
    factor=st.floats(0.1, 10),
)
def test_tv_is_nonnegative_shift_invariant_and_homogeneous(
    shape: tuple[int, ...], seed: int, opts: dict, shift: float, factor: float
) -> None:
    u = _tensor(shape, seed)
    value = tvd.total_variation(u, **opts)
    assert value.shape == (shape[0],)
    assert torch.isfinite(value).all() and (value >= 0).all()
    torch.testing.assert_close(tvd.total_variation(u + shift, **opts), value, rtol=1e-9, atol=1e-9)
    # TV_beta(c u) = c^beta TV_beta(u) when eps = 0.
    torch.testing.assert_close(
        tvd.total_variation(factor * u, **opts),
        factor ** opts["beta"] * value,
        rtol=1e-9,
        atol=1e-9,
    )


@settings(max_examples=25, deadline=None)
@given(
    height=st.integers(1, 12),
    width=st.integers(1, 12),
    channels=st.sampled_from([1, 3]),
    seed=st.integers(0, 2**31 - 1),
    weight=st.floats(1e-3, 10),
    opts=options,
)
def test_denoised_image_is_finite_and_keeps_the_mean(
    height: int, width: int, channels: int, seed: int, weight: float, opts: dict
) -> None:
    # With the L2 fidelity and a shift-invariant TV, the minimiser keeps each channel's mean:
    # d/dc E(u + c) = sum(u - f) = 0 at the minimum.
    f = np.random.default_rng(seed).random((height, width, channels))
    u = tvd.denoise(f, weight=weight, dtype=torch.float64, tol=1e-8, max_iter=5000, **opts)
    assert u.shape == f.shape and np.isfinite(u).all()
    np.testing.assert_allclose(u.mean(axis=(0, 1)), f.mean(axis=(0, 1)), atol=1e-3)
