"""The fused TGV kernel (``_tgv_kernel.c``): its iterates equal the PyTorch path's, it is what
runs by default on CPU, and what it solves is TGV (affine images are returned unchanged)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tvdenoise
from tvdenoise.fidelity import get_fidelity
from tvdenoise.solvers import Problem, tgv
from tvdenoise.solvers.native import load_tgv
from tvdenoise.solvers.tgv import solve_tgv, tgv_dual_components

pytestmark = pytest.mark.skipif(load_tgv() is None, reason="no C compiler for the TGV kernel")


def _problem(
    shape: tuple[int, int, int, int],
    color: str,
    seed: int,
    dtype: torch.dtype = torch.float64,
    weight: float = 0.1,
) -> Problem:
    generator = torch.Generator().manual_seed(seed)
    f = torch.rand(shape, generator=generator, dtype=torch.float64).to(dtype)
    return Problem(f, weight, 1.0, "tgv", color, get_fidelity("l2"), tgv_ratio=1.5)


def _state(problem: Problem, seed: int) -> torch.Tensor:
    """A start (p, q, w) away from 0, so every term of the iteration is exercised."""
    n, c, h, w = problem.f.shape
    generator = torch.Generator().manual_seed(seed + 100)
    state = 0.05 * torch.randn(
        (n, c, tgv_dual_components(2), h, w), generator=generator, dtype=torch.float64
    )
    return state.to(problem.f.dtype)


def _both(problem: Problem, iterations: int, seed: int, **options):
    results = {}
    for backend in ("native", "torch"):
        dual = _state(problem, seed)
        u, record = solve_tgv(
            problem,
            max_iter=iterations,
            tol=0.0,
            check_every=7,
            dual=dual,
            backend=backend,
            **options,
        )
        results[backend] = (u, dual, record)
    return results


@settings(max_examples=25, deadline=None)
@given(
    height=st.integers(1, 13),
    width=st.integers(1, 13),
    channels=st.sampled_from([1, 2, 3]),
    images=st.integers(1, 2),
    color=st.sampled_from(["vectorial", "channelwise"]),
    seed=st.integers(0, 1000),
)
def test_kernel_iterates_equal_the_torch_path_in_float64(
    height: int, width: int, channels: int, images: int, color: str, seed: int
) -> None:
    problem = _problem((images, channels, height, width), color, seed)
    results = _both(problem, 25, seed)
    (u_native, dual_native, record_native) = results["native"]
    (u_torch, dual_torch, record_torch) = results["torch"]
    torch.testing.assert_close(u_native, u_torch, rtol=0, atol=1e-12)
    torch.testing.assert_close(dual_native, dual_torch, rtol=0, atol=1e-12)
    assert record_native.iterations == record_torch.iterations
    assert record_native.energy == pytest.approx(record_torch.energy, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize(
    "shape", [(1, 1, 1, 17), (1, 1, 17, 1), (2, 3, 13, 11), (1, 1, 31, 37), (1, 2, 64, 70)]
)
@pytest.mark.parametrize("color", ["vectorial", "channelwise"])
def test_kernel_iterates_equal_the_torch_path_on_odd_and_prime_shapes(
    shape: tuple[int, int, int, int], color: str
) -> None:
    # The accelerated phase (gamma > 0) and the plain one both run in 120 iterations.
    problem = _problem(shape, color, 4)
    results = _both(problem, 120, 4)
    torch.testing.assert_close(results["native"][0], results["torch"][0], rtol=0, atol=1e-12)
    torch.testing.assert_close(results["native"][1], results["torch"][1], rtol=0, atol=1e-12)


def test_kernel_iterates_follow_the_torch_path_in_float32() -> None:
    problem = _problem((1, 3, 19, 23), "vectorial", 2, dtype=torch.float32)
    results = _both(problem, 40, 2)
    torch.testing.assert_close(results["native"][0], results["torch"][0], rtol=0, atol=1e-5)


def test_kernel_runs_threaded_like_one_thread() -> None:
    # 2 x 3 x 130 x 170 is over the 64k values at which the kernel uses more threads.
    problem = _problem((2, 3, 130, 170), "vectorial", 9)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _both(problem, 15, 9)["native"]
        torch.set_num_threads(2)
        two = _both(problem, 15, 9)["native"]
    finally:
        torch.set_num_threads(previous)
    torch.testing.assert_close(one[0], two[0], rtol=0, atol=1e-12)


def test_the_kernel_runs_by_default_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    original = tgv._NativeIteration.run

    def counting(self, *args, **kwargs):
        calls.append("native")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(tgv._NativeIteration, "run", counting)
    noisy = np.random.default_rng(0).random((20, 24))
    tvdenoise.denoise(noisy, weight=0.1, tv="tgv", tol=1e-2)
    assert calls
    # volumes and the other fidelities keep the PyTorch path
    calls.clear()
    tvdenoise.denoise(noisy, weight=0.1, tv="tgv", fidelity="l1", tol=1e-1)
    assert not calls


def _affine(shape: tuple[int, int], channels: int) -> np.ndarray:
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    planes = [0.2 + 0.01 * (c + 1) * y + 0.02 * (c + 1) * x for c in range(channels)]
    return np.stack(planes, axis=-1) if channels > 1 else planes[0]


@pytest.mark.parametrize(("shape", "channels"), [((20, 24), 1), ((15, 17), 3), ((1, 29), 1)])
def test_kernel_returns_an_affine_image_unchanged(shape: tuple[int, int], channels: int) -> None:
    image = _affine(shape, channels)
    f = torch.tensor(image).reshape(1, *shape, channels).permute(0, 3, 1, 2).contiguous()
    problem = Problem(f, 0.2, 1.0, "tgv", "vectorial", get_fidelity("l2"))
    u, record = solve_tgv(problem, max_iter=2000, tol=1e-9, backend="native")
    np.testing.assert_allclose(u.numpy(), f.numpy(), atol=1e-9)
    assert record.energy == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    ("shape", "color"),
    [
        ((2, 3, 13, 11), "vectorial"),
        ((1, 2, 9, 1), "channelwise"),
        ((1, 1, 1, 7), "vectorial"),
        ((1, 3, 20, 17), "channelwise"),
    ],
)
def test_kernel_check_equals_the_torch_energy_and_certificate(
    shape: tuple[int, int, int, int], color: str
) -> None:
    problem = _problem(shape, color, 5)
    n, c, h, w = shape
    generator = torch.Generator().manual_seed(6)
    u = problem.f + 0.1 * torch.randn(shape, generator=generator, dtype=torch.float64)
    field = tgv.field_mask(
        0.1 * torch.randn((n, c, 2, h, w), generator=generator, dtype=torch.float64), 2
    )
    # large enough that both balls are violated and the local repair runs
    q = 0.3 * torch.randn((n, c, 3, h, w), generator=generator, dtype=torch.float64)
    kernel = tgv.native_kernel(problem, "native")
    assert kernel is not None
    runner = tgv._NativeIteration(problem, u, field, torch.zeros_like(field), q, kernel)
    energy, lower = runner.measure()
    torch.testing.assert_close(energy, tgv.tgv_energy(problem, u, field), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(lower, tgv.certificate(problem, q), rtol=1e-12, atol=1e-12)
    assert torch.equal(runner.q, q)  # the check works on a copy
