from __future__ import annotations

import pytest
import torch

from tvdenoise.ops import divergence, gradient, safe_power


@pytest.mark.parametrize("shape", [(7, 5), (3, 6, 4), (2, 3, 5, 8), (1, 1, 1, 9), (2, 1, 6, 1)])
def test_divergence_is_negative_adjoint_of_gradient(shape: tuple[int, ...]) -> None:
    generator = torch.Generator().manual_seed(sum(shape))
    u = torch.randn(shape, dtype=torch.float64, generator=generator)
    g_shape = (*shape[:-2], 2, *shape[-2:])
    p = torch.randn(g_shape, dtype=torch.float64, generator=generator)
    lhs = (gradient(u) * p).sum()
    rhs = -(u * divergence(p)).sum()
    torch.testing.assert_close(lhs, rhs, rtol=1e-12, atol=1e-12)


def test_gradient_is_forward_difference_with_neumann_boundary() -> None:
    u = torch.tensor([[1.0, 4.0, 9.0], [2.0, 2.0, 2.0]])
    g = gradient(u)
    expected_rows = torch.tensor([[1.0, -2.0, -7.0], [0.0, 0.0, 0.0]])
    expected_cols = torch.tensor([[3.0, 5.0, 0.0], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(g[0], expected_rows)
    torch.testing.assert_close(g[1], expected_cols)


def test_divergence_of_gradient_is_neumann_laplacian() -> None:
    # Interior: the 5-point Laplacian; it sums to 0 over the image (Neumann boundary).
    u = torch.randn(6, 7, dtype=torch.float64)
    lap = divergence(gradient(u))
    interior = u[:-2, 1:-1] + u[2:, 1:-1] + u[1:-1, :-2] + u[1:-1, 2:] - 4 * u[1:-1, 1:-1]
    torch.testing.assert_close(lap[1:-1, 1:-1], interior)
    assert abs(float(lap.sum())) < 1e-12


def test_gradient_works_in_3d() -> None:
    u = torch.arange(24.0).reshape(2, 3, 4)
    g = gradient(u, ndim=3)
    assert g.shape == (3, 2, 3, 4)
    assert torch.all(g[0, 0] == 12) and torch.all(g[0, 1] == 0)
    assert torch.all(g[1, :, :2] == 4) and torch.all(g[2, :, :, :3] == 1)


def test_safe_power_has_finite_gradient_at_zero() -> None:
    s = torch.tensor([0.0, 4.0], requires_grad=True)
    safe_power(s, 0.5).sum().backward()
    assert s.grad is not None
    torch.testing.assert_close(s.grad, torch.tensor([0.0, 0.25]))
