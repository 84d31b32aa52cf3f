"""The fast ROF solver (``rof``): both backends against the generic Chambolle-Pock and an
independent energy, the compiled kernel's cache and fallback, batching, records, CUDA."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest
import torch
from test_solvers import _problem, _reference_energy

from tvdenoise.errors import InvalidParameterError
from tvdenoise.fidelity import L2Fidelity
from tvdenoise.solvers import IterationInfo, Problem, native, solve
from tvdenoise.solvers.primal_dual import solve_primal_dual
from tvdenoise.solvers.rof import DEFAULT_GAMMA, DEFAULT_TAU, solve_rof

TV_KINDS = ["isotropic", "anisotropic", "symmetric"]
COUPLINGS = list(itertools.product(TV_KINDS, ["vectorial", "channelwise"]))
BACKENDS = ["native", "torch"]


@pytest.fixture(autouse=True)
def _kernel_or_skip(request) -> None:
    wants_kernel = (
        "backend" in request.fixturenames and request.getfixturevalue("backend") == "native"
    )
    if wants_kernel and native.load() is None:
        pytest.skip("no C compiler: the native kernel cannot be built here")


@pytest.fixture
def backend(request) -> str:
    return request.param


def _colour(astronaut_crop) -> np.ndarray:
    return astronaut_crop[1][:40, :36].astype(np.float64)


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
@pytest.mark.parametrize(("tv", "color"), COUPLINGS)
def test_rof_takes_the_steps_of_the_generic_chambolle_pock(
    astronaut_crop, backend: str, tv: str, color: str
) -> None:
    problem = _problem(_colour(astronaut_crop), weight=0.15, tv=tv, color=color)
    options = {"max_iter": 40, "tol": 0.0, "tau": DEFAULT_TAU, "gamma": DEFAULT_GAMMA}
    reference, generic = solve_primal_dual(problem, **options)
    u, record = solve_rof(problem, backend=backend, **options)
    assert torch.allclose(u, reference, atol=1e-12, rtol=0)
    assert record.solver == "rof" and record.iterations == 40
    assert record.energy == pytest.approx(generic.energy, rel=1e-12)
    assert record.gap == pytest.approx(generic.gap, rel=1e-6)


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
@pytest.mark.parametrize(("tv", "color"), COUPLINGS)
def test_rof_converges_to_the_minimiser_its_gap_certifies(
    astronaut_crop, backend: str, tv: str, color: str
) -> None:
    problem = _problem(_colour(astronaut_crop), weight=0.15, tv=tv, color=color)
    reference, exact = solve(problem, "chambolle_pock", max_iter=20000, tol=1e-7)
    u, record = solve_rof(problem, max_iter=20000, tol=1e-7, backend=backend)
    assert record.converged and record.gap <= 1e-7
    # The record's energy is the energy of u, computed independently in numpy.
    assert record.energy == pytest.approx(_reference_energy(u, problem, 0.0), rel=1e-10)
    # 1-strong convexity: 1/2 ||u - u*||^2 <= E(u) - E* <= gap E(u), for both results.
    bound = (2 * record.gap * record.energy) ** 0.5 + (2 * exact.gap * exact.energy) ** 0.5
    assert float(torch.linalg.vector_norm(u - reference)) <= bound


@pytest.mark.parametrize(("tv", "color"), COUPLINGS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_native_and_torch_backends_take_the_same_steps(
    astronaut_crop, tv: str, color: str, dtype: torch.dtype
) -> None:
    if native.load() is None:
        pytest.skip("no C compiler: the native kernel cannot be built here")
    problem = _problem(_colour(astronaut_crop), tv=tv, color=color)
    problem = Problem(problem.f.to(dtype), 0.1, 1.0, tv, color, L2Fidelity())
    options = {"max_iter": 23, "tol": 0.0, "check_every": 7}
    fused, fused_record = solve_rof(problem, backend="native", **options)
    eager, eager_record = solve_rof(problem, backend="torch", **options)
    atol = 1e-5 if dtype == torch.float32 else 1e-12
    assert torch.allclose(fused, eager, atol=atol)
    assert [h.iteration for h in fused_record.history] == [7, 14, 21, 23]
    for a, b in zip(fused_record.history, eager_record.history, strict=True):
        assert a.energy == pytest.approx(b.energy, rel=1e-6)
        assert a.gap == pytest.approx(b.gap, rel=1e-3, abs=1e-7)
        assert a.relative_change == pytest.approx(b.relative_change, rel=1e-3)


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_relative_change_is_the_last_step(camera_crop, backend: str) -> None:
    problem = _problem(camera_crop[1][:32, :32])
    before, _ = solve_rof(problem, max_iter=11, tol=0.0, backend=backend)
    after, record = solve_rof(problem, max_iter=12, tol=0.0, backend=backend)
    expected = float(torch.linalg.vector_norm(after - before) / torch.linalg.vector_norm(after))
    assert record.relative_change == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_batched_solve_equals_individual_solves(astronaut_crop, backend: str) -> None:
    colour = _colour(astronaut_crop)
    a, b = _problem(colour, color="vectorial"), _problem(colour[::-1] * 0.5, color="vectorial")
    batch = Problem(torch.cat([a.f, b.f]), 0.1, 1.0, "isotropic", "vectorial", L2Fidelity())
    options = {"max_iter": 60, "tol": 0.0, "backend": backend}
    u, record = solve_rof(batch, **options)
    ua, _ = solve_rof(a, **options)
    ub, _ = solve_rof(b, **options)
    assert torch.allclose(u[0], ua[0], atol=1e-12) and torch.allclose(u[1], ub[0], atol=1e-12)
    energies = [_reference_energy(u[i : i + 1], p, 0.0) for i, p in enumerate((a, b))]
    assert record.energy == pytest.approx(sum(energies), rel=1e-10)


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_record_callback_cap_init_and_time_limit(camera_crop, backend: str) -> None:
    problem = _problem(camera_crop[1][:48, :48])
    seen: list[IterationInfo] = []
    u, record = solve_rof(
        problem, max_iter=3000, tol=1e-4, callback=seen.append, check_every=3, backend=backend
    )
    assert record.converged and record.stop_reason == "tol" and record.gap <= 1e-4
    assert [info.iteration for info in seen] == list(range(3, record.iterations + 1, 3))
    assert record.history == seen and record.energy == seen[-1].energy
    # The gap certifies the energy: no random perturbation goes lower by more than it.
    assert record.energy - record.gap * record.energy <= _reference_energy(
        u + 1e-3 * torch.randn_like(u), problem, 0.0
    )
    _, capped = solve_rof(problem, max_iter=7, tol=0.0, check_every=5, backend=backend)
    assert capped.iterations == 7 and capped.stop_reason == "max_iter" and not capped.converged
    assert [h.iteration for h in capped.history] == [5, 7]
    # A start image is used as the generic solver uses it.
    start = 0.5 * problem.f
    steps = {"max_iter": 4, "tol": 0.0, "tau": DEFAULT_TAU, "gamma": DEFAULT_GAMMA}
    warm, _ = solve_rof(problem, init=start, backend=backend, **steps)
    assert torch.allclose(warm, solve_primal_dual(problem, init=start, **steps)[0], atol=1e-12)
    _, timed = solve_rof(
        problem, max_iter=10**7, tol=0.0, time_limit=0.05, check_every=1, backend=backend
    )
    assert timed.stop_reason == "time_limit" and not timed.converged


def test_auto_uses_rof_where_its_kernel_runs(camera_crop) -> None:
    _, record = solve(_problem(camera_crop[1][:32, :32]), max_iter=100, tol=1e-3)
    assert record.solver == ("rof" if native.load() is not None else "chambolle_pock")
    _, smooth = solve(_problem(camera_crop[1][:32, :32], beta=1.5, eps=1e-3), max_iter=50, tol=0)
    assert smooth.solver == "accelerated"


def test_rof_refuses_problems_it_cannot_solve(camera_crop) -> None:
    with pytest.raises(InvalidParameterError, match="rof needs beta = 1"):
        solve_rof(_problem(camera_crop[1][:16, :16], beta=2.0), max_iter=5, tol=0.0)
    volume = Problem(torch.zeros(1, 1, 4, 8, 8), 0.1, 1.0, "isotropic", "vectorial", L2Fidelity())
    with pytest.raises(InvalidParameterError, match="images"):
        solve_rof(volume, max_iter=5, tol=0.0)


def test_kernel_compiles_into_the_cache_once(tmp_path, monkeypatch) -> None:
    if native._compiler() is None:
        pytest.skip("no C compiler")
    monkeypatch.setenv("TVDENOISE_CACHE_DIR", str(tmp_path))
    first = native._build()
    assert first is not None and first.compile_seconds > 0 and first.path.parent == tmp_path
    second = native._build()
    assert second is not None and second.compile_seconds == 0.0 and second.path == first.path
    assert [p.name for p in tmp_path.iterdir()] == [first.path.name]  # no temporary left


@pytest.mark.parametrize(
    "environment",
    [{"TVDENOISE_NO_NATIVE": "1"}, {"CC": "no-such-compiler-tvdenoise"}, {"CC": "false"}],
)
def test_without_a_compiler_rof_falls_back_to_torch(
    camera_crop, tmp_path, monkeypatch, environment: dict[str, str]
) -> None:
    monkeypatch.setenv("TVDENOISE_CACHE_DIR", str(tmp_path))  # nothing cached there
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(native, "load", native._build)  # no process-wide memo
    assert native.load() is None
    problem = _problem(camera_crop[1][:32, :32])
    u, record = solve_rof(problem, max_iter=3000, tol=1e-6)
    reference, _ = solve(problem, "chambolle_pock", max_iter=3000, tol=1e-6)
    assert record.solver == "rof" and record.converged
    # auto then takes the generic solver, faster than rof's PyTorch operations.
    assert solve(problem, max_iter=10, tol=0.0)[1].solver == "chambolle_pock"
    assert torch.allclose(u, reference, atol=2e-3)
    with pytest.raises(InvalidParameterError, match="backend native"):
        solve_rof(problem, max_iter=5, tol=0.0, backend="native")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
@pytest.mark.parametrize(("tv", "color"), COUPLINGS)
def test_cuda_agrees_with_cpu(astronaut_crop, tv: str, color: str) -> None:
    problem = _problem(_colour(astronaut_crop).astype(np.float32), tv=tv, color=color)
    problem = Problem(problem.f.float(), 0.1, 1.0, tv, color, L2Fidelity())
    on_gpu = Problem(problem.f.cuda(), 0.1, 1.0, tv, color, L2Fidelity())
    cpu, _ = solve_rof(problem, max_iter=5000, tol=1e-6)
    gpu, record = solve_rof(on_gpu, max_iter=5000, tol=1e-6)
    assert gpu.is_cuda and record.converged
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-4)


@pytest.mark.parametrize("solver", ["rof", "chambolle_pock"])
def test_dual_warm_start_resumes_where_a_solve_stopped(camera_crop, solver: str) -> None:
    # Solved once to a tight gap, the same problem restarted from its own primal and dual
    # is already converged: it stops at its first check, at the same minimiser, while a start
    # from the primal alone (dual at zero) must work its way back.
    problem = _problem(camera_crop[1][:48, :40].astype(np.float64), weight=0.12)
    dual = torch.zeros((1, 1, 2, 48, 40), dtype=torch.float64)
    u, first = solve(problem, solver, max_iter=5000, tol=1e-7, dual=dual)
    assert first.converged and first.iterations > 50
    assert float(dual.abs().max()) > 0.05  # the final dual came back
    norms = dual.pow(2).sum(2).sqrt()
    assert float(norms.max()) <= 0.12 * (1 + 1e-9)
    options = {"max_iter": 5000, "tol": 1e-6, "check_every": 5}
    again, resumed = solve(problem, solver, init=u, dual=dual.clone(), **options)
    _, primal_only = solve(problem, solver, init=u, **options)
    assert resumed.iterations == 5 and primal_only.iterations > 5
    assert torch.allclose(again, u, atol=1e-5)


@pytest.mark.parametrize("solver", ["rof", "chambolle_pock"])
def test_any_dual_start_converges_and_its_shape_is_checked(camera_crop, solver: str) -> None:
    problem = _problem(camera_crop[1][:32, :32].astype(np.float64), weight=0.1)
    # The dual of the same image at twice the weight lies outside |p| <= 0.1 in places; the
    # first dual step projects it, and the solve reaches the same minimiser.
    dual = torch.zeros((1, 1, 2, 32, 32), dtype=torch.float64)
    solve(replace(problem, weight=0.2), solver, max_iter=3000, tol=1e-6, dual=dual)
    assert float(dual.pow(2).sum(2).sqrt().max()) > 0.15
    u, record = solve(problem, solver, max_iter=3000, tol=1e-6, dual=dual)
    reference, _ = solve(problem, solver, max_iter=3000, tol=1e-6)
    assert record.converged and torch.allclose(u, reference, atol=1e-4)
    assert float(dual.pow(2).sum(2).sqrt().max()) <= 0.1 * (1 + 1e-9)  # the final dual
    # A float32 dual for a float64 problem is converted, and the final dual still comes back
    # (the dual is not unique where u is flat, so it is checked by its bound, not its value).
    single = torch.zeros((1, 1, 2, 32, 32), dtype=torch.float32)
    solve(problem, solver, max_iter=3000, tol=1e-6, dual=single)
    norms = single.double().pow(2).sum(2).sqrt()
    assert 0.09 < float(norms.max()) <= 0.1 * (1 + 1e-6)
    with pytest.raises(InvalidParameterError, match=r"dual must have shape \(1, 1, 2, 32, 32\)"):
        solve(problem, solver, max_iter=10, tol=1e-4, dual=torch.zeros(1, 1, 32, 32))


def _kernel_iterations(name: str, shape, kind: int, iterations: int, threads: int, *depth: int):
    """Run the fused kernel's ``name`` on a random image: u, ubar, p and the final steps."""
    import ctypes

    kernel = native.load()
    if kernel is None:
        pytest.skip("no C compiler")
    n, c, h, w = shape
    f = torch.rand(shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    u, ubar = f.clone(), f.clone()
    p = torch.zeros((n, c, 4 if kind == 2 else 2, h, w), dtype=torch.float64)
    steps = (ctypes.c_double * 2)(DEFAULT_TAU, 1 / (8 * DEFAULT_TAU))
    kernel.function(name, True)(
        u.data_ptr(), ubar.data_ptr(), p.data_ptr(), f.data_ptr(), n, c, h, w, kind, 0.05,
        ctypes.addressof(steps), DEFAULT_GAMMA, iterations, threads, *depth,
    )  # fmt: skip
    return u, ubar, p, tuple(steps)


@pytest.mark.parametrize("shape", [(1, 3, 37, 131), (2, 1, 5, 3), (1, 2, 1, 7), (1, 1, 9, 1)])
@pytest.mark.parametrize("kind", [0, 1, 2])
def test_wavefront_sweeps_equal_the_two_sweep_iterations(shape, kind: int) -> None:
    # Several iterations per sweep over the rows (cache reuse) must give every value the
    # operations of the plain iteration: same iterates, for any depth and thread count,
    # including depths that do not divide the count, one-row and one-column images.
    reference = _kernel_iterations("rof_cp_iterations", shape, kind, 23, 1)
    for depth, threads in [(1, 1), (3, 2), (16, 2), (40, 1)]:
        got = _kernel_iterations("rof_cp_wavefront", shape, kind, 23, threads, depth)
        assert got[3] == reference[3]
        for mine, theirs in zip(got[:3], reference[:3], strict=True):
            assert torch.allclose(mine, theirs, rtol=0, atol=1e-12)


def test_wavefront_depth_fits_the_rows_in_flight_in_the_cache() -> None:
    from tvdenoise.solvers.rof import WAVEFRONT_MAX_DEPTH, wavefront_depth

    assert wavefront_depth(1 << 20, cache=0) == 0  # off: the plain two sweeps
    assert wavefront_depth(100, cache=1 << 20) == WAVEFRONT_MAX_DEPTH
    depth = wavefront_depth(300_000, cache=8 << 20)
    assert (2 * depth + 3) * 300_000 <= 8 << 20 < (2 * depth + 5) * 300_000
    assert wavefront_depth(10 << 20, cache=8 << 20) == 1  # rows wider than the cache


@pytest.mark.parametrize("shape", [(2, 3, 19, 37), (1, 1, 1, 9), (1, 2, 7, 1), (1, 1, 2, 2)])
@pytest.mark.parametrize("tv", ["isotropic", "anisotropic", "symmetric"])
@pytest.mark.parametrize("color", ["vectorial", "channelwise"])
def test_fused_measure_equals_the_torch_energy_and_dual_value(shape, tv: str, color: str) -> None:
    # The kernel's one-sweep energy, dual value, step and norm against the same quantities
    # from PyTorch operations, at a random (not converged) primal-dual point.
    from tvdenoise.solvers.rof import _NativeIteration, _TorchIteration

    kernel = native.load()
    if kernel is None:
        pytest.skip("no C compiler")
    generator = torch.Generator().manual_seed(3)
    f = torch.rand(shape, generator=generator, dtype=torch.float64)
    problem = Problem(f, 0.07, 1.0, tv, color, L2Fidelity())
    u = torch.rand(shape, generator=generator, dtype=torch.float64)
    components = 4 if tv == "symmetric" else 2
    p = 0.02 * torch.randn((*shape[:2], components, *shape[2:]), generator=generator,
                           dtype=torch.float64)  # fmt: skip
    # The kernel's layout: the forward differences' last row (y) and column (x) are 0, and
    # the backward pair's first row and column.
    p[:, :, 0, -1, :] = 0
    p[:, :, 1, :, -1] = 0
    if tv == "symmetric":
        p[:, :, 2, 0, :] = 0
        p[:, :, 3, :, 0] = 0
    reference = _TorchIteration(problem, u.clone(), p.clone())
    fused = _NativeIteration(problem, u.clone(), p.clone(), kernel)
    shifted = 0.01 * torch.randn(shape, generator=generator, dtype=torch.float64)
    reference.ubar = u + shifted
    fused.ubar = u + shifted
    for mine, theirs in zip(
        fused.measure(problem, 0.9), reference.measure(problem, 0.9), strict=True
    ):
        assert torch.allclose(
            torch.as_tensor(mine), torch.as_tensor(theirs), rtol=1e-10, atol=1e-12
        )


@pytest.mark.parametrize(
    "shape",
    [(1, 1, 1, 13), (1, 1, 11, 1), (2, 3, 17, 23), (1, 1, 31, 37), (1, 3, 5, 2053)],
)
@pytest.mark.parametrize("color", ["vectorial", "channelwise"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_symmetric_kernel_takes_the_torch_steps_on_any_shape(
    shape, color: str, dtype: torch.dtype
) -> None:
    # The fused symmetric iteration (its one-pass dual, its vectorised loops, the wavefront
    # on the 3 x 2053 rows) against the generic difference operators of the PyTorch path:
    # one-row and one-column images, prime sizes, batches, grey and colour.
    if native.load() is None:
        pytest.skip("no C compiler: the native kernel cannot be built here")
    f = torch.rand(shape, generator=torch.Generator().manual_seed(11), dtype=dtype)
    problem = Problem(f, 0.08, 1.0, "symmetric", color, L2Fidelity())
    options = {"max_iter": 19, "tol": 0.0, "check_every": 6}
    fused, fused_record = solve_rof(problem, backend="native", **options)
    eager, eager_record = solve_rof(problem, backend="torch", **options)
    atol = 1e-5 if dtype == torch.float32 else 1e-12
    assert torch.allclose(fused, eager, rtol=0, atol=atol)
    for a, b in zip(fused_record.history, eager_record.history, strict=True):
        assert a.energy == pytest.approx(b.energy, rel=1e-6 if dtype == torch.float32 else 1e-12)
        assert a.gap == pytest.approx(b.gap, rel=1e-3, abs=1e-7)
