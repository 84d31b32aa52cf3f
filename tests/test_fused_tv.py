"""The fused C path of total_variation / TVLoss against the PyTorch (autograd) path."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tvdenoise import TVLoss, _fused_tv, native, total_variation
from tvdenoise.errors import InvalidParameterError

needs_kernel = pytest.mark.skipif(
    _fused_tv.kernel() is None, reason="no C compiler: the TV kernel cannot be built here"
)

KINDS = ("isotropic", "anisotropic", "symmetric")
COLORS = ("vectorial", "channelwise")
REDUCTIONS = ("sum", "mean", "none")


def _both(x, weights=None, **options):
    """Value and gradient of sum(weights * TV(x)) on the native and the torch path."""
    results = []
    for backend in ("native", "torch"):
        leaf = x.detach().clone().requires_grad_()
        value = total_variation(leaf, backend=backend, **options)
        w = torch.ones_like(value) if weights is None else weights
        if value.requires_grad:
            (value * w).sum().backward()
        # The torch path of a single pixel is a constant with no graph: its gradient is 0.
        grad = leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)
        results.append((value.detach(), grad))
    return results


def _uses_fused(value: torch.Tensor) -> bool:
    """Whether the autograd graph of ``value`` holds the fused function."""
    pending, seen = [value.grad_fn], set()
    while pending:
        node = pending.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if "FusedTotalVariation" in type(node).__name__:
            return True
        pending.extend(next_node for next_node, _ in node.next_functions)
    return False


shapes = st.one_of(
    st.tuples(st.integers(1, 9), st.integers(1, 9)),
    st.tuples(st.integers(1, 3), st.integers(1, 9), st.integers(1, 9)),
    st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 9), st.integers(1, 9)),
    st.tuples(
        st.integers(1, 2),
        st.integers(1, 2),
        st.integers(1, 5),
        st.integers(1, 6),
        st.integers(1, 6),
    ),
)


@needs_kernel
@settings(max_examples=300, deadline=None)
@given(
    shape=shapes,
    tv=st.sampled_from(KINDS),
    color=st.sampled_from(COLORS),
    beta=st.sampled_from([1.0, 2.0, 0.5, 1.3, 3.0]),
    eps=st.sampled_from([0.0, 1e-3, 0.2]),
    reduction=st.sampled_from(REDUCTIONS),
    spaced=st.booleans(),
    flat=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_native_equals_the_autograd_path_for_every_option(
    shape, tv, color, beta, eps, reduction, spaced, flat, seed
) -> None:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=generator, dtype=torch.float64)
    if flat:  # zero differences: the subgradient 0 of safe_power, not NaN
        x[..., : max(shape[-1] // 2, 1)] = 0.25
    spatial = 3 if len(shape) == 5 else 2
    spacing = (0.5, 2.0, 1.5)[-spatial:] if spaced else None
    options = dict(beta=beta, tv=tv, color=color, eps=eps, reduction=reduction, spacing=spacing)
    probe = total_variation(x, backend="torch", **options)
    weights = torch.randn(probe.shape, generator=generator, dtype=torch.float64)
    (v_native, g_native), (v_torch, g_torch) = _both(x, weights, **options)
    assert v_native.shape == v_torch.shape and v_native.dtype == torch.float64
    assert torch.allclose(v_native, v_torch, rtol=1e-10, atol=1e-10)
    assert torch.isfinite(g_native).all()
    assert torch.allclose(g_native, g_torch, rtol=1e-10, atol=1e-10)


@needs_kernel
@pytest.mark.parametrize("tv", KINDS)
@pytest.mark.parametrize("color", COLORS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_on_the_fused_path(tv, color, reduction) -> None:
    x = torch.randn(2, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    volume = torch.randn(1, 2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    for tensor, spacing in ((x, (1.0, 0.5)), (volume, (2.0, 1.0, 0.5))):

        def f(t, spacing=spacing):
            return total_variation(
                t, 1.4, tv, color, 0.1, reduction, spacing=spacing, backend="native"
            )

        assert torch.autograd.gradcheck(f, (tensor,))


@needs_kernel
def test_double_backward_goes_through_the_autograd_path() -> None:
    x = torch.randn(1, 2, 6, 7, dtype=torch.float64, requires_grad=True)

    def f(t):
        return total_variation(t, 1.0, "symmetric", "vectorial", 0.3, "sum", backend="native")

    assert torch.autograd.gradgradcheck(f, (x,))
    # Hessian-vector product equals the torch path's.
    v = torch.randn_like(x)
    hv = []
    for backend in ("native", "torch"):
        value = total_variation(x, 1.0, "isotropic", "vectorial", 0.3, "sum", backend=backend)
        (g,) = torch.autograd.grad(value.sum(), x, create_graph=True)
        (h,) = torch.autograd.grad((g * v).sum(), x)
        hv.append(h)
    assert torch.allclose(hv[0], hv[1], rtol=1e-10, atol=1e-12)


@needs_kernel
def test_fused_path_runs_by_default() -> None:
    x = torch.rand(2, 3, 8, 8, requires_grad=True)
    assert _uses_fused(total_variation(x))
    assert _uses_fused(TVLoss()(x)) and _uses_fused(TVLoss(reduction="none")(x))
    assert _uses_fused(TVLoss(tv="anisotropic")(x.double()))
    assert not _uses_fused(total_variation(x, backend="torch"))
    # float16 inputs keep the PyTorch path, as before.
    half = torch.rand(1, 1, 8, 8, dtype=torch.float16, requires_grad=True)
    assert not _uses_fused(total_variation(half))


@needs_kernel
def test_design_reference_values_through_the_fused_path() -> None:
    ramp = torch.arange(0, 2.5, 0.1, dtype=torch.float64).reshape(5, 5)
    assert total_variation(ramp, tv="anisotropic", backend="native").item() == pytest.approx(12.0)
    batch = torch.arange(0, 10, 0.1, dtype=torch.float64).reshape(4, 1, 5, 5)
    per_sample = total_variation(batch, tv="anisotropic", reduction="mean", backend="native")
    assert torch.allclose(per_sample, torch.full((4,), 0.6, dtype=torch.float64))
    style = torch.tensor([[1.0, 2, 3], [2, 3, 4], [3, 4, 5]]).expand(1, 2, 3, 3)
    loss = TVLoss(2, "anisotropic", "channelwise", 0.0, "mean", weight=2.0, backend="native")
    assert loss(style).item() == pytest.approx(4.0)


@needs_kernel
def test_isotropic_tv_of_a_linear_ramp_is_its_slope_times_the_interior() -> None:
    # u = 3 i + 4 j: |grad| = 5 where both differences exist, 3 or 4 on the last column / row.
    i, j = torch.meshgrid(torch.arange(6.0), torch.arange(7.0), indexing="ij")
    u = (3 * i + 4 * j).double()
    expected = 5 * 5 * 6 + 3 * 5 + 4 * 6  # interior, last column (only D_y), last row (D_x)
    assert total_variation(u, backend="native").item() == pytest.approx(expected)


@needs_kernel
def test_gradients_are_finite_and_zero_on_a_constant_image() -> None:
    for tv in KINDS:
        for beta in (0.5, 1.0, 2.0):
            x = torch.full((2, 3, 9, 9), 0.7, requires_grad=True)
            total_variation(x, beta, tv, eps=0.0, backend="native").sum().backward()
            assert x.grad is not None and torch.count_nonzero(x.grad) == 0


@needs_kernel
def test_float32_agrees_with_float64_and_non_contiguous_input() -> None:
    x = torch.rand(3, 4, 33, 65, dtype=torch.float64)
    for tv in KINDS:
        reference = total_variation(x, tv=tv, reduction="mean", backend="torch")
        single = total_variation(x.float(), tv=tv, reduction="mean", backend="native")
        assert single.dtype == torch.float32
        assert torch.allclose(single.double(), reference, rtol=1e-5)
    transposed = x.transpose(2, 3)  # a non-contiguous view
    assert not transposed.is_contiguous()
    (v1, g1), (v2, g2) = _both(transposed, tv="symmetric")
    assert torch.allclose(v1, v2, rtol=1e-12) and torch.allclose(g1, g2, atol=1e-12)


@needs_kernel
def test_large_batch_uses_threads_and_matches() -> None:
    # Big enough for the parallel runs of slabs, with a run boundary inside each image.
    x = torch.rand(3, 2, 97, 131, dtype=torch.float64)
    volume = torch.rand(2, 1, 37, 29, 31, dtype=torch.float64)
    for tensor in (x, volume):
        for tv in KINDS:
            (v1, g1), (v2, g2) = _both(tensor, tv=tv, color="vectorial", eps=1e-3)
            assert torch.allclose(v1, v2, rtol=1e-11) and torch.allclose(g1, g2, atol=1e-11)


def test_without_the_kernel_total_variation_takes_the_torch_path(monkeypatch) -> None:
    monkeypatch.setattr(_fused_tv, "kernel", lambda: None)
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    value = TVLoss(tv="symmetric")(x)
    assert not _uses_fused(value)
    value.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    with pytest.raises(InvalidParameterError, match="backend native needs"):
        total_variation(x, backend="native")


def test_no_native_environment_disables_the_kernel(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TVDENOISE_NO_NATIVE", "1")
    monkeypatch.setenv("TVDENOISE_CACHE_DIR", str(tmp_path))
    assert native.build(_fused_tv.SOURCE, "tv_kernel") is None


def test_kernel_builds_without_isa_flags(tmp_path, monkeypatch) -> None:
    if native.compiler() is None:
        pytest.skip("no C compiler")
    monkeypatch.setenv("TVDENOISE_CACHE_DIR", str(tmp_path))
    built = native.build(_fused_tv.SOURCE, "tv_kernel", _fused_tv._FLAGS, isa=False)
    assert built is not None and "march" not in built.path.name
    assert built.path.parent == tmp_path and built.compile_seconds > 0


def test_editing_an_included_file_builds_anew(tmp_path, monkeypatch) -> None:
    if native.compiler() is None:
        pytest.skip("no C compiler")
    monkeypatch.setenv("TVDENOISE_CACHE_DIR", str(tmp_path / "cache"))
    source, part = tmp_path / "main.c", tmp_path / "part.c"
    source.write_text('#include "part.c"\nint answer(void) { return part(); }\n')
    part.write_text("static int part(void) { return 41; }\n")
    first = native.build(source, "probe", includes=(part,))
    part.write_text("static int part(void) { return 42; }\n")
    second = native.build(source, "probe", includes=(part,))
    assert first is not None and second is not None
    assert first.path != second.path and second.compile_seconds > 0
    assert first.library.answer() == 41 and second.library.answer() == 42


def test_backend_is_validated() -> None:
    with pytest.raises(InvalidParameterError, match="backend must be one of"):
        total_variation(torch.rand(4, 4), backend="cuda")
    with pytest.raises(InvalidParameterError, match="backend must be one of"):
        TVLoss(backend="fast")


@needs_kernel
def test_mean_reduction_matches_a_hand_count_for_anisotropic_volumes() -> None:
    # Independent of both paths: each direction's mean of |difference| over its own count.
    x = torch.rand(2, 1, 4, 5, 6, dtype=torch.float64)
    expected = sum(
        torch.diff(x, dim=d).abs().sum(dim=(1, 2, 3, 4))
        / (math.prod(x.shape[1:]) / x.shape[d])
        / (x.shape[d] - 1)
        for d in (2, 3, 4)
    )
    got = total_variation(x, tv="anisotropic", reduction="mean", backend="native")
    assert torch.allclose(got, expected, rtol=1e-12)
