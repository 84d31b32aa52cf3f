"""Nonlocal TV (tv="nonlocal"): the graph gradient's adjoint, the grid graph that gives back
forward isotropic TV and its minimiser, the patch graph, the certified gap, the automatic
weight."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import tvdenoise
from tvdenoise import nonlocal_graph
from tvdenoise.errors import InvalidParameterError
from tvdenoise.fidelity import get_fidelity
from tvdenoise.nonlocal_graph import build_graph, grid_graph
from tvdenoise.solvers import Problem, nonlocal_tv, solve
from tvdenoise.solvers import native as nonlocal_native
from tvdenoise.solvers.nonlocal_tv import kernel_divergence, solve_nonlocal


def _random_graph(n: int = 2, c: int = 3, h: int = 13, w: int = 11):
    generator = torch.Generator().manual_seed(1)
    pilot = torch.rand((n, c, h, w), generator=generator, dtype=torch.float64)
    return build_graph(pilot, neighbours=6, window=7, patch=3, scale=0.3)


def test_graph_gradient_adjoint_identity() -> None:
    graph = _random_graph()
    generator = torch.Generator().manual_seed(2)
    u = torch.randn((2, 3, 13, 11), generator=generator, dtype=torch.float64)
    p = torch.randn((2, 3, 6, 13, 11), generator=generator, dtype=torch.float64)
    lhs = (graph.gradient(u) * p).sum()
    rhs = -(u * graph.divergence(p)).sum()
    assert torch.allclose(lhs, rhs, rtol=1e-12, atol=1e-12)


def test_graph_norm_bound_holds_by_power_iteration() -> None:
    graph = _random_graph(1, 1)
    x = torch.randn((1, 1, 13, 11), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for _ in range(300):
        x = -graph.divergence(graph.gradient(x))
        x = x / x.norm()
    assert float((graph.gradient(x) ** 2).sum()) <= graph.norm_squared()


@pytest.mark.parametrize("color", ["vectorial", "channelwise"])
def test_nonlocal_tv_on_the_grid_graph_is_forward_isotropic_tv(color: str) -> None:
    u = torch.rand((2, 3, 9, 12), dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    graph = grid_graph(2, 9, 12)
    expected = tvdenoise.total_variation(u, tv="isotropic", color=color)
    assert torch.allclose(graph.total_variation(u, color), expected, rtol=1e-12)


@pytest.mark.slow
def test_solver_on_the_grid_graph_reaches_the_isotropic_minimiser(camera_crop) -> None:
    _, noisy = camera_crop
    f = torch.tensor(noisy[:32, :32]).view(1, 1, 32, 32)
    graph = grid_graph(1, 32, 32)
    nonlocal_problem = Problem(
        f, 0.1, 1.0, "nonlocal", "vectorial", get_fidelity("l2"), graph=graph
    )
    grid_problem = Problem(f, 0.1, 1.0, "isotropic", "vectorial", get_fidelity("l2"))
    ours, record = solve_nonlocal(nonlocal_problem, max_iter=20_000, tol=1e-8)
    theirs, other = solve(grid_problem, "chambolle_pock", max_iter=20_000, tol=1e-8)
    assert record.converged and other.converged
    # both certified to a relative gap of 1e-8: strong convexity puts each within
    # ||u - u*|| <= sqrt(2 gap E) (about 3e-4 here) of the one minimiser
    bound = 2 * (2e-8 * record.energy) ** 0.5
    assert float(torch.linalg.vector_norm(ours - theirs)) < bound


def test_patch_graph_finds_the_period_of_a_repeated_pattern() -> None:
    # Stripes of period 5 along x, plus a little noise: each pixel's best matches sit whole
    # periods away, never at a neighbouring phase.
    x = np.arange(40)
    stripes = np.tile((np.sin(2 * np.pi * x / 5) > 0).astype(float), (40, 1))
    noisy = stripes + 0.02 * np.random.default_rng(0).standard_normal(stripes.shape)
    pilot = torch.tensor(noisy).view(1, 1, 40, 40)
    graph = build_graph(pilot, neighbours=4, window=11, patch=5, scale=0.2)
    rows, cols = torch.meshgrid(torch.arange(40), torch.arange(40), indexing="ij")
    flat = graph.index.view(4, 40, 40)
    dx = flat % 40 - cols
    inner = (cols >= 10) & (cols < 30) & (rows >= 10) & (rows < 30)
    assert bool(((dx % 5) == 0)[:, inner].all())
    assert graph.index.shape == (1, 4, 1600) and graph.root_weight.shape == (1, 4, 40, 40)


def test_patch_graph_links_within_the_image_only() -> None:
    graph = _random_graph()
    assert int(graph.index.min()) >= 0 and int(graph.index.max()) < 13 * 11
    assert bool((graph.root_weight > 0).all()) and bool((graph.root_weight <= 1).all())


@pytest.fixture(scope="module")
def reference(camera_crop):
    _, noisy = camera_crop
    f = torch.tensor(noisy[:32, :32]).view(1, 1, 32, 32)
    pilot = torch.tensor(tvdenoise.denoise(noisy[:32, :32], weight=0.1)).view(1, 1, 32, 32)
    graph = build_graph(pilot.double(), scale=0.1)
    problem = Problem(f, 0.1, 1.0, "nonlocal", "vectorial", get_fidelity("l2"), graph=graph)
    u, record = solve_nonlocal(problem, max_iter=50_000, tol=1e-8)
    assert record.converged
    return problem, u, record.energy


@pytest.mark.slow
def test_energy_is_not_above_small_perturbations_of_the_result(reference) -> None:
    problem, u, energy = reference
    generator = torch.Generator().manual_seed(7)
    for _ in range(20):
        du = 1e-3 * torch.randn(u.shape, generator=generator, dtype=u.dtype)
        assert float(problem.energy(u + du)) >= energy * (1 - 1e-8)


@pytest.mark.slow
def test_certified_gap_bounds_the_true_suboptimality(reference) -> None:
    problem, _, best = reference
    for tol in (1e-1, 1e-2, 1e-3):
        dual = torch.zeros((1, 1, problem.dual_components, 32, 32), dtype=torch.float64)
        _, record = solve_nonlocal(problem, max_iter=20_000, tol=tol, dual=dual)
        assert record.converged and record.gap is not None and record.gap <= tol
        lower = float(problem.fidelity.dual(problem.f, problem.nonlocal_graph.divergence(dual)))
        assert lower <= best + 1e-9
        # the reference is itself within 1e-8 relative of the minimum
        assert record.energy >= best * (1 - 1e-8)
        assert record.energy - best <= record.gap * record.energy + 1e-8 * best


@pytest.mark.slow
def test_denoise_nonlocal_colour_and_batches(astronaut_crop) -> None:
    clean, noisy = (image[:48, :48] for image in astronaut_crop)
    u = tvdenoise.denoise(noisy, weight=0.15, tv="nonlocal")
    assert u.shape == noisy.shape and np.mean((u - clean) ** 2) < np.mean((noisy - clean) ** 2)
    batch = torch.tensor(np.stack([noisy, noisy[::-1].copy()])).permute(0, 3, 1, 2).float()
    together = tvdenoise.denoise(batch, weight=0.15, tv="nonlocal", tol=1e-5)
    alone = tvdenoise.denoise(batch[1], weight=0.15, tv="nonlocal", tol=1e-5)
    # each certified to a relative gap of 1e-5: within sqrt(2 gap E) of the same minimiser
    assert float(torch.linalg.vector_norm(together[1] - alone)) < 2e-2


def test_nonlocal_refuses_volumes_and_other_solvers() -> None:
    with pytest.raises(InvalidParameterError, match="2-D images"):
        tvdenoise.denoise(np.zeros((4, 8, 8)), weight=0.1, tv="nonlocal", volume=True)
    with pytest.raises(InvalidParameterError, match="solver"):
        tvdenoise.denoise(np.zeros((8, 8)), weight=0.1, tv="nonlocal", solver="accelerated")


@pytest.mark.slow
def test_automatic_weight_works_with_nonlocal(camera_crop) -> None:
    clean, noisy = camera_crop
    clean, noisy = clean[:64, :64], noisy[:64, :64]
    u, record = tvdenoise.denoise(
        noisy, weight="auto", sigma=25 / 255, tv="nonlocal", return_record=True
    )
    choice = record.weight_choice
    assert choice is not None and math.isfinite(choice.weight) and len(choice.trials) >= 3

    def psnr(v: np.ndarray) -> float:
        return float(10 * np.log10(1.0 / np.mean((v - clean) ** 2)))

    # the oracle over a grid around the choice, each on the graph of the same pilot weight
    grid = [choice.weight * 2 ** (k / 2) for k in range(-3, 4)]
    best = max(psnr(tvdenoise.denoise(noisy, weight=w, tv="nonlocal")) for w in grid)
    assert psnr(u) >= best - 0.6
    assert psnr(u) > psnr(noisy) + 4


@pytest.fixture
def kernel():
    loaded = nonlocal_native.load_nonlocal()
    if loaded is None:
        pytest.skip("no C compiler: the nonlocal kernel cannot be built here")
    return loaded


@pytest.mark.parametrize(
    ("color", "channels"), [("vectorial", 1), ("vectorial", 3), ("channelwise", 3)]
)
@pytest.mark.parametrize("one_sweep", [True, False])
def test_kernel_iterates_equal_the_torch_path(
    kernel, monkeypatch, color: str, channels: int, one_sweep: bool
) -> None:
    monkeypatch.setattr(nonlocal_tv, "ONE_SWEEP", one_sweep)
    # The same algorithm in other operations: equal up to rounding after many iterations.
    f = torch.rand(
        (2, channels, 17, 13), dtype=torch.float64, generator=torch.Generator().manual_seed(5)
    )
    graph = build_graph(f, neighbours=6, window=7, patch=3, scale=0.3)
    problem = Problem(f, 0.1, 1.0, "nonlocal", color, get_fidelity("l2"), graph=graph)
    duals = [torch.zeros((2, channels, 6, 17, 13), dtype=torch.float64) for _ in range(2)]
    ours, record = solve_nonlocal(problem, max_iter=73, tol=0.0, backend="native", dual=duals[0])
    theirs, other = solve_nonlocal(problem, max_iter=73, tol=0.0, backend="torch", dual=duals[1])
    assert record.iterations == other.iterations == 73
    assert float((ours - theirs).abs().max()) < 1e-12
    assert float((duals[0] - duals[1]).abs().max()) < 1e-12
    assert record.gap == pytest.approx(other.gap, rel=1e-9, abs=1e-13)


def test_reverse_adjacency_divergence_is_minus_the_adjoint_of_the_gradient(kernel) -> None:
    graph = _random_graph()
    generator = torch.Generator().manual_seed(3)
    u = torch.randn((2, 3, 13, 11), generator=generator, dtype=torch.float64)
    p = torch.randn((2, 3, 6, 13, 11), generator=generator, dtype=torch.float64)
    div_p = kernel_divergence(kernel, graph, p)
    lhs = (graph.gradient(u) * p).sum()
    assert torch.allclose(lhs, -(u * div_p).sum(), rtol=1e-12, atol=1e-12)
    start, edge, _ = graph.reverse
    # every edge of positive weight is listed once, under the pixel it points at
    hw = graph.index.shape[2]
    assert int(start[0, -1]) == int((graph.root_weight[0] > 0).sum())
    targets = graph.index[0].reshape(-1)[edge[0, : int(start[0, -1])]]
    owners = torch.repeat_interleave(torch.arange(hw), start[0, 1:] - start[0, :-1])
    assert torch.equal(targets, owners)


def test_the_kernel_runs_by_default_on_cpu(kernel, monkeypatch) -> None:
    calls = []
    original = nonlocal_tv._NativeIteration.run

    def counting(self, *args, **kwargs):
        calls.append(args[0])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(nonlocal_tv._NativeIteration, "run", counting)
    _, record = tvdenoise.denoise(
        np.random.default_rng(0).random((24, 24)), weight=0.1, tv="nonlocal", return_record=True
    )
    assert record.solver == "nonlocal" and sum(calls) == record.iterations > 0


def test_without_the_kernel_the_torch_path_solves_the_same_problem(
    kernel, monkeypatch, tmp_path
) -> None:
    f = torch.rand((1, 1, 20, 20), dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    graph = build_graph(f, neighbours=6, window=7, patch=3, scale=0.3)
    problem = Problem(f, 0.1, 1.0, "nonlocal", "vectorial", get_fidelity("l2"), graph=graph)
    ours, _ = solve_nonlocal(problem, max_iter=200, tol=0.0)
    monkeypatch.setenv("TVDENOISE_NO_NATIVE", "1")
    monkeypatch.setenv("TVDENOISE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(nonlocal_native, "load_nonlocal", nonlocal_native.load_nonlocal.__wrapped__)
    assert nonlocal_native.load_nonlocal() is None and nonlocal_tv.native_kernel(problem) is None

    def refuse(self, *args, **kwargs):
        raise AssertionError("the kernel ran")

    monkeypatch.setattr(nonlocal_tv._NativeIteration, "run", refuse)
    theirs, record = solve_nonlocal(problem, max_iter=200, tol=0.0)
    assert record.iterations == 200 and float((ours - theirs).abs().max()) < 1e-12
    with pytest.raises(InvalidParameterError, match="backend native"):
        solve_nonlocal(problem, max_iter=10, tol=0.0, backend="native")


@pytest.fixture
def graph_kernel():
    if nonlocal_graph.load_kernel() is None:
        pytest.skip("no C compiler: the graph kernel cannot be built here")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(
    ("shape", "options"),
    [
        ((2, 3, 23, 19), dict(neighbours=6, window=7, patch=3)),
        ((1, 1, 40, 40), dict()),
        ((1, 2, 30, 31), dict()),
        ((1, 1, 5, 6), dict(neighbours=40, window=9, patch=5)),  # fewer offsets than edges
    ],
)
def test_graph_kernel_keeps_the_neighbours_the_torch_path_keeps(
    graph_kernel, dtype: torch.dtype, shape: tuple[int, ...], options: dict
) -> None:
    pilot = torch.rand(shape, dtype=dtype, generator=torch.Generator().manual_seed(8))
    ours = build_graph(pilot, scale=0.3, backend="native", **options)
    theirs = build_graph(pilot, scale=0.3, backend="torch", **options)
    assert torch.equal(ours.index, theirs.index)
    tolerance = 1e-13 if dtype == torch.float64 else 1e-6
    assert torch.allclose(ours.root_weight, theirs.root_weight, rtol=0, atol=tolerance)


def test_graph_kernel_breaks_ties_towards_the_nearer_offset(graph_kernel) -> None:
    # A flat pilot: every patch distance is 0, so the nearest offsets are kept, in order.
    ours = build_graph(torch.zeros((1, 1, 16, 16)), scale=0.3, backend="native")
    theirs = build_graph(torch.zeros((1, 1, 16, 16)), scale=0.3, backend="torch")
    assert torch.equal(ours.index, theirs.index) and torch.equal(
        ours.root_weight, theirs.root_weight
    )


def test_graph_build_without_the_kernel_uses_torch(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("TVDENOISE_NO_NATIVE", "1")
    monkeypatch.setenv("TVDENOISE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(nonlocal_graph, "load_kernel", nonlocal_graph.load_kernel.__wrapped__)
    assert nonlocal_graph.load_kernel() is None
    pilot = torch.rand(
        (1, 1, 12, 12), dtype=torch.float64, generator=torch.Generator().manual_seed(9)
    )
    graph = build_graph(pilot, neighbours=4, window=5, patch=3, scale=0.3)
    assert graph.index.shape == (1, 4, 144)
    with pytest.raises(ValueError, match="backend native"):
        build_graph(pilot, scale=0.3, backend="native")


def test_kernel_float32_iterates_follow_the_torch_path(kernel) -> None:
    f = torch.rand((1, 3, 24, 20), generator=torch.Generator().manual_seed(10))
    graph = build_graph(f, neighbours=6, window=7, patch=3, scale=0.3)
    problem = Problem(f, 0.1, 1.0, "nonlocal", "vectorial", get_fidelity("l2"), graph=graph)
    ours, _ = solve_nonlocal(problem, max_iter=50, tol=0.0, backend="native")
    theirs, _ = solve_nonlocal(problem, max_iter=50, tol=0.0, backend="torch")
    assert ours.dtype == torch.float32 and float((ours - theirs).abs().max()) < 1e-5
