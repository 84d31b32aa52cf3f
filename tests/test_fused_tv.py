"""The fused C path of total_variation / TVLoss against the PyTorch (autograd) path."""

from __future__ import annotations

import gc
import math
import weakref

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
    beta=st.sampled_from([1.0, 2.0, 0.5, 1.5, 1.3, 3.0]),
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


def _reference_loss(x, weight, batch_reduction, **options):
    """TVLoss's definition written out over the plain-autograd path of total_variation."""
    value = weight * total_variation(x, backend="torch", **options)
    if x.dim() >= 4 and options["reduction"] != "none":
        if batch_reduction == "mean":
            return value.mean()
        if batch_reduction == "sum":
            return value.sum()
    return value


@needs_kernel
@settings(max_examples=300, deadline=None)
@given(
    shape=shapes,
    tv=st.sampled_from(KINDS),
    color=st.sampled_from(COLORS),
    beta=st.sampled_from([0.5, 1.0, 1.5, 2.0]),
    eps=st.sampled_from([0.0, 1e-3, 0.2]),
    reduction=st.sampled_from(REDUCTIONS),
    batch_reduction=st.sampled_from(["mean", "sum", "none"]),
    weight=st.sampled_from([1.0, 0.25, -3.0]),
    cotangent=st.sampled_from(["one", "three", "random"]),
    spaced=st.booleans(),
    flat=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_tvloss_value_and_gradient_in_one_sweep_equal_the_autograd_path(
    shape, tv, color, beta, eps, reduction, batch_reduction, weight, cotangent, spaced, flat, seed
) -> None:
    # The forward computes the gradient with the value; backward only scales it by the
    # incoming gradient: 1 (loss.backward() on a scalar: the kept tensor itself), 3 (one
    # multiply), or one random weight per output value (per sample, or per term for "none").
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=generator, dtype=torch.float64)
    if flat:
        x[..., : max(shape[-1] // 2, 1)] = 0.25
    spatial = 3 if len(shape) == 5 else 2
    spacing = (0.5, 2.0, 1.5)[-spatial:] if spaced else None
    options = dict(beta=beta, tv=tv, color=color, eps=eps, reduction=reduction, spacing=spacing)
    ours = TVLoss(weight=weight, batch_reduction=batch_reduction, backend="native", **options)
    results = []
    for compute in (ours, lambda t: _reference_loss(t, weight, batch_reduction, **options)):
        leaf = x.detach().clone().requires_grad_()
        out = compute(leaf)
        if cotangent == "one" and out.dim() == 0:
            cotangent_values = None  # out.backward(): the kept gradient is handed over as it is
        elif cotangent == "random":
            seeded = torch.Generator().manual_seed(seed)
            cotangent_values = torch.randn(out.shape, generator=seeded, dtype=out.dtype)
        else:
            cotangent_values = torch.full_like(out, 1.0 if cotangent == "one" else 3.0)
        # The torch path of a single pixel is a constant with no graph: its gradient is 0.
        if out.requires_grad:
            out.backward(cotangent_values)
        grad = leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)
        results.append((out.detach(), grad))
    (v_ours, g_ours), (v_ref, g_ref) = results
    assert v_ours.shape == v_ref.shape and v_ours.dtype == torch.float64
    assert torch.allclose(v_ours, v_ref, rtol=1e-10, atol=1e-10)
    assert torch.isfinite(g_ours).all()
    assert torch.allclose(g_ours, g_ref, rtol=1e-10, atol=1e-10)


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
    built = native.build(
        _fused_tv.SOURCE, "tv_kernel", _fused_tv._FLAGS, isa=False, includes=_fused_tv.INCLUDES
    )
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


# The gradient computed in the forward sweep: kept on the graph, handed over by backward.


def _kept_gradient(out: torch.Tensor) -> torch.Tensor | None:
    """The gradient that the forward sweep left on ``out``'s node (None once handed over)."""
    assert "FusedTotalVariation" in type(out.grad_fn).__name__
    return out.grad_fn.gradient


@needs_kernel
def test_loss_backward_hands_over_the_kept_gradient_without_a_pass() -> None:
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    out = TVLoss(tv="anisotropic", color="channelwise", eps=0.0)(x)
    kept = _kept_gradient(out)
    assert kept is not None and kept.shape == x.shape
    storage = kept.data_ptr()
    del kept  # held here, autograd would have to copy it
    out.backward()
    # The same memory became x.grad: no copy, no multiply; the node no longer holds it.
    assert x.grad is not None and x.grad.data_ptr() == storage
    assert out.grad_fn.gradient is None
    reference = x.detach().clone().requires_grad_()
    _reference_loss(
        reference, 1.0, "mean", tv="anisotropic", color="channelwise", eps=0.0, reduction="mean"
    ).backward()
    assert torch.allclose(x.grad, reference.grad, rtol=1e-5, atol=1e-7)


@needs_kernel
@pytest.mark.parametrize("batch_reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_backward_scales_by_a_non_unit_grad_output(reduction, batch_reduction) -> None:
    x = torch.randn(3, 2, 7, 8, dtype=torch.float64)
    options = dict(tv="isotropic", color="vectorial", eps=0.1, reduction=reduction, beta=1.5)
    grads = []
    for compute in (
        TVLoss(weight=0.5, batch_reduction=batch_reduction, backend="native", **options),
        lambda t: _reference_loss(t, 0.5, batch_reduction, **options),
    ):
        leaf = x.clone().requires_grad_()
        out = compute(leaf)
        # loss * 3 (a scalar), or a weight per sample or per term, as a training loop may.
        weights = torch.linspace(-1.0, 2.0, out.numel(), dtype=torch.float64).view(out.shape)
        (3.0 * out if out.dim() == 0 else out * weights).sum().backward()
        grads.append(leaf.grad)
    assert torch.allclose(grads[0], grads[1], rtol=1e-10, atol=1e-12)


@needs_kernel
def test_a_forward_without_backward_leaves_no_state_behind() -> None:
    loss = TVLoss(beta=2.0, tv="anisotropic", color="channelwise", eps=0.0)
    first = torch.rand(2, 1, 12, 12, dtype=torch.float64, requires_grad=True)
    out = loss(first)
    kept = weakref.ref(_kept_gradient(out))
    del out  # the graph goes, and the gradient it held with it
    gc.collect()
    assert kept() is None and first.grad is None
    second = torch.rand(2, 1, 12, 12, dtype=torch.float64, requires_grad=True)
    loss(second).backward()
    reference = second.detach().clone().requires_grad_()
    _reference_loss(
        reference,
        1.0,
        "mean",
        beta=2.0,
        tv="anisotropic",
        color="channelwise",
        eps=0.0,
        reduction="mean",
    ).backward()
    assert torch.allclose(second.grad, reference.grad, rtol=1e-10, atol=1e-12)


@needs_kernel
def test_one_module_in_two_graphs_before_backward() -> None:
    loss = TVLoss(tv="symmetric", eps=1e-3)
    a = torch.randn(2, 3, 9, 10, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, 3, 9, 10, dtype=torch.float64, requires_grad=True)
    # Two graphs from one module, and the same input twice: each node keeps its own gradient.
    (loss(a) + 2.0 * loss(b) + loss(b)).backward()
    expected = []
    for tensor, factor in ((a, 1.0), (b, 3.0)):
        leaf = tensor.detach().clone().requires_grad_()
        (
            factor * _reference_loss(leaf, 1.0, "mean", tv="symmetric", eps=1e-3, reduction="mean")
        ).backward()
        expected.append(leaf.grad)
    assert torch.allclose(a.grad, expected[0], rtol=1e-10, atol=1e-12)
    assert torch.allclose(b.grad, expected[1], rtol=1e-10, atol=1e-12)


@needs_kernel
def test_a_second_backward_of_a_retained_graph_sweeps_again() -> None:
    x = torch.randn(2, 1, 6, 5, 4, dtype=torch.float64, requires_grad=True)
    out = TVLoss(tv="isotropic", eps=0.01, batch_reduction="sum")(x)
    out.backward(retain_graph=True)
    once = x.grad.clone()
    out.backward()  # the kept gradient went to the first backward: the kernel sweeps again
    assert torch.allclose(x.grad, 2 * once, rtol=1e-12, atol=1e-14)


@needs_kernel
@pytest.mark.parametrize("batch_reduction", ["mean", "sum", "none"])
def test_double_backward_of_tvloss_is_exact(batch_reduction) -> None:
    x = torch.randn(2, 2, 6, 7, dtype=torch.float64, requires_grad=True)
    v = torch.randn_like(x)
    options = dict(beta=1.5, tv="anisotropic", color="vectorial", eps=0.2, reduction="mean")
    hessian_v = []
    for compute in (
        TVLoss(weight=2.0, batch_reduction=batch_reduction, backend="native", **options),
        lambda t: _reference_loss(t, 2.0, batch_reduction, **options),
    ):
        (g,) = torch.autograd.grad(compute(x).sum(), x, create_graph=True)
        (h,) = torch.autograd.grad((g * v).sum(), x)
        hessian_v.append(h)
    assert torch.allclose(hessian_v[0], hessian_v[1], rtol=1e-10, atol=1e-12)


@needs_kernel
@pytest.mark.parametrize("batch_reduction", ["mean", "sum", "none"])
def test_gradcheck_of_tvloss_with_weight_and_batch_reduction(batch_reduction) -> None:
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    for tv in KINDS:
        loss = TVLoss(1.3, tv, "vectorial", 0.1, "mean", -0.5, batch_reduction, backend="native")
        assert torch.autograd.gradcheck(loss, (x,))


@needs_kernel
def test_without_grad_only_the_value_is_computed() -> None:
    x = torch.rand(2, 3, 10, 11, dtype=torch.float64)
    loss = TVLoss(tv="anisotropic", eps=0.0, weight=3.0)
    expected = _reference_loss(x, 3.0, "mean", tv="anisotropic", eps=0.0, reduction="mean")
    with torch.no_grad():
        inside = loss(x.requires_grad_())
    outside = loss(x.detach())
    for out in (inside, outside):
        assert out.grad_fn is None and torch.allclose(out, expected, rtol=1e-12)


@needs_kernel
@pytest.mark.parametrize(
    "shape",
    [
        (3, 3, 97, 131),
        (2, 1, 150, 131),
        (2, 1, 37, 29, 31),
        (1, 3, 9, 40, 33),
        (1, 3, 12, 1100),  # rows wider than the kernel's blocks of 512 columns
        (1, 1, 3, 4, 600),
    ],
)
@pytest.mark.parametrize("tv", KINDS)
@pytest.mark.parametrize("beta", [1.0, 2.0, 1.5])
def test_threaded_runs_of_slabs_match_on_grey_and_colour_batches(shape, tv, beta) -> None:
    # Big enough for several runs of slabs per image on both threads, on the shapes that take
    # the kernel's specialised loops (one or three channels, beta 1 and 2, eps 0 or not), and
    # rows the kernel takes in several blocks of columns.
    x = torch.rand(shape, dtype=torch.float64)
    for color in COLORS:
        for eps in (0.0, 1e-3):
            (v1, g1), (v2, g2) = _both(x, beta=beta, tv=tv, color=color, eps=eps, reduction="mean")
            assert torch.allclose(v1, v2, rtol=1e-11) and torch.allclose(g1, g2, atol=1e-11)
