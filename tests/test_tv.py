from __future__ import annotations

import math

import pytest
import torch

import tvdenoise as tvd
from tvdenoise.errors import InvalidParameterError


def test_seed_anisotropic_tv_of_2d_ramp_is_12() -> None:
    x = torch.arange(0, 2.5, 0.1).reshape(5, 5)
    value = tvd.total_variation(x, tv="anisotropic")
    assert value.shape == ()
    assert value.item() == pytest.approx(12.0, rel=1e-5)


def test_seed_anisotropic_tv_of_3d_ramp_is_12() -> None:
    x = torch.arange(0, 2.5, 0.1).reshape(1, 5, 5)
    value = tvd.total_variation(x, tv="anisotropic")
    assert value.shape == ()
    assert value.item() == pytest.approx(12.0, rel=1e-5)


def test_seed_mean_reduction_gives_one_value_per_sample() -> None:
    x = torch.arange(0, 10, 0.1).reshape(4, 1, 5, 5)
    value = tvd.total_variation(x, tv="anisotropic", reduction="mean")
    torch.testing.assert_close(value, torch.full((4,), 0.6), rtol=1e-5, atol=1e-6)


def test_seed_style_transfer_tvloss_is_4() -> None:
    x = torch.tensor([[1.0, 2, 3], [2, 3, 4], [3, 4, 5]]).expand(1, 2, 3, 3)
    loss = tvd.TVLoss(
        beta=2, tv="anisotropic", color="channelwise", eps=0.0, reduction="mean", weight=2.0
    )
    assert loss(x).item() == pytest.approx(4.0)
    # The same through the functional form, batch-averaged by hand.
    functional = 2.0 * tvd.total_variation(
        x, beta=2, tv="anisotropic", color="channelwise", reduction="mean"
    )
    assert functional.shape == (1,)
    assert functional.mean().item() == pytest.approx(4.0)


def test_style_transfer_loss_matches_its_definition_on_random_batch() -> None:
    x = torch.randn(3, 2, 6, 5, dtype=torch.float64)
    n, c, h, w = x.shape
    h_tv = ((x[:, :, 1:, :] - x[:, :, :-1, :]) ** 2).sum()
    w_tv = ((x[:, :, :, 1:] - x[:, :, :, :-1]) ** 2).sum()
    reference = 2 * (h_tv / (c * (h - 1) * w) + w_tv / (c * h * (w - 1))) / n
    loss = tvd.TVLoss(beta=2, tv="anisotropic", color="channelwise", eps=0.0, weight=2.0)
    torch.testing.assert_close(loss(x), reference)


def test_isotropic_tv_of_ramp_matches_closed_form() -> None:
    # u[i, j] = a i + b j: interior pixels have |grad| = sqrt(a^2 + b^2); the last row has
    # only the x difference b, the last column only the y difference a, the corner 0.
    a, b, h, w = 0.3, 0.4, 6, 7
    rows = torch.arange(h, dtype=torch.float64)
    cols = torch.arange(w, dtype=torch.float64)
    i, j = torch.meshgrid(rows, cols, indexing="ij")
    u = a * i + b * j
    expected = (h - 1) * (w - 1) * math.hypot(a, b) + (w - 1) * b + (h - 1) * a
    assert tvd.total_variation(u).item() == pytest.approx(expected, rel=1e-12)
    beta = 1.7
    expected_beta = (
        (h - 1) * (w - 1) * (a * a + b * b) ** (beta / 2) + (w - 1) * b**beta + (h - 1) * a**beta
    )
    assert tvd.total_variation(u, beta=beta).item() == pytest.approx(expected_beta, rel=1e-12)


def test_vectorial_couples_channels_inside_the_root() -> None:
    # Two channels with x differences 3 and 4 everywhere but the last column.
    u = torch.zeros(2, 1, 3, dtype=torch.float64)
    u[0, 0] = torch.tensor([0.0, 3.0, 6.0])
    u[1, 0] = torch.tensor([0.0, 4.0, 8.0])
    assert tvd.total_variation(u, color="vectorial").item() == pytest.approx(2 * 5.0)
    assert tvd.total_variation(u, color="channelwise").item() == pytest.approx(2 * 7.0)


def test_anisotropic_vectorial_couples_channels_per_direction() -> None:
    u = torch.zeros(2, 2, 2, dtype=torch.float64)
    u[0] = torch.tensor([[0.0, 3.0], [3.0, 3.0]])
    u[1] = torch.tensor([[0.0, 4.0], [4.0, 4.0]])
    # Pixel (0,0): y diffs (3, 4) -> 5, x diffs (3, 4) -> 5; every other difference is 0.
    assert tvd.total_variation(u, tv="anisotropic", color="vectorial").item() == pytest.approx(10)
    assert tvd.total_variation(u, tv="anisotropic", color="channelwise").item() == pytest.approx(14)


def test_eps_smoothing_adds_eps_to_flat_regions() -> None:
    u = torch.zeros(4, 5, dtype=torch.float64)
    assert tvd.total_variation(u, eps=0.1).item() == pytest.approx(20 * 0.1)
    assert tvd.total_variation(u, eps=0.1, beta=2).item() == pytest.approx(20 * 0.01)


def test_reduction_none_returns_per_pixel_map_that_sums_to_total() -> None:
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    for color, channels in (("channelwise", 3), ("vectorial", 1)):
        tv_map = tvd.total_variation(x, color=color, reduction="none")
        assert tv_map.shape == (2, channels, 5, 6)
        torch.testing.assert_close(tv_map.sum(dim=(1, 2, 3)), tvd.total_variation(x, color=color))
    assert tvd.total_variation(x[0, 0], reduction="none").shape == (5, 6)


def test_isotropic_mean_divides_by_number_of_pixels() -> None:
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    torch.testing.assert_close(
        tvd.total_variation(x, color="channelwise", reduction="mean"),
        tvd.total_variation(x, color="channelwise") / (3 * 5 * 6),
    )


@pytest.mark.parametrize("tv", ["isotropic", "anisotropic", "symmetric"])
@pytest.mark.parametrize("color", ["vectorial", "channelwise"])
@pytest.mark.parametrize("beta", [0.5, 1.0, 1.5, 2.0])
def test_gradcheck_float64(tv: str, color: str, beta: float) -> None:
    x = torch.randn(2, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda t: tvd.total_variation(t, beta=beta, tv=tv, color=color, eps=0.01), (x,)
    )
    assert torch.autograd.gradcheck(
        lambda t: tvd.total_variation(t, beta=beta, tv=tv, color=color), (x,)
    )


@pytest.mark.parametrize("beta", [0.3, 1.0, 2.0])
@pytest.mark.parametrize("tv", ["isotropic", "anisotropic", "symmetric"])
def test_gradient_is_finite_on_constant_image(beta: float, tv: str) -> None:
    x = torch.full((1, 3, 8, 8), 0.5, requires_grad=True)
    loss = tvd.TVLoss(beta=beta, tv=tv, eps=0.0)(x)
    loss.backward()
    assert x.grad is not None
    assert torch.isfinite(x.grad).all()
    assert torch.all(x.grad == 0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_any_float_dtype(dtype: torch.dtype) -> None:
    x = torch.arange(0, 2.5, 0.1).reshape(5, 5).to(dtype)
    value = tvd.total_variation(x, tv="anisotropic")
    assert value.dtype == dtype
    assert value.float().item() == pytest.approx(12.0, rel=2e-2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_cuda_matches_cpu() -> None:
    x = torch.randn(2, 3, 16, 16)
    cpu = tvd.total_variation(x)
    gpu = tvd.total_variation(x.cuda())
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-5, atol=1e-5)


def test_tvloss_batch_reductions() -> None:
    x = torch.randn(3, 1, 4, 4)
    per_sample = tvd.total_variation(x, eps=1e-8, reduction="mean")
    assert tvd.TVLoss(batch_reduction="none")(x).shape == (3,)
    torch.testing.assert_close(tvd.TVLoss(batch_reduction="sum")(x), per_sample.sum())
    torch.testing.assert_close(tvd.TVLoss()(x), per_sample.mean())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"beta": 0}, "beta must be > 0, got 0"),
        ({"beta": -1.0}, "beta must be > 0"),
        ({"tv": "l1"}, "tv must be one of isotropic, anisotropic, symmetric; got 'l1'"),
        ({"color": "rgb"}, "color must be one of vectorial, channelwise"),
        ({"reduction": "max"}, "reduction must be one of sum, mean, none"),
        ({"eps": -0.1}, "eps must be >= 0"),
    ],
)
def test_bad_options_raise_clear_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        tvd.total_variation(torch.zeros(3, 3), **kwargs)


def test_bad_input_shapes_and_dtypes_are_rejected() -> None:
    with pytest.raises(InvalidParameterError, match="floating-point"):
        tvd.total_variation(torch.zeros(3, 3, dtype=torch.int64))
    with pytest.raises(InvalidParameterError, match="dimensions"):
        tvd.total_variation(torch.zeros(3))


def test_tensorflow_convention_anisotropic_sum_per_image() -> None:
    # tf.image.total_variation: per image, sum of |differences| over H, W and C (NHWC input).
    nhwc = torch.randn(2, 5, 6, 3, dtype=torch.float64)
    reference = (nhwc[:, 1:] - nhwc[:, :-1]).abs().sum(dim=(1, 2, 3)) + (
        nhwc[:, :, 1:] - nhwc[:, :, :-1]
    ).abs().sum(dim=(1, 2, 3))
    ours = tvd.total_variation(nhwc.permute(0, 3, 1, 2), tv="anisotropic", color="channelwise")
    torch.testing.assert_close(ours, reference)


def test_kornia_convention_per_channel_sum() -> None:
    # kornia.losses.total_variation: one value per (N, C), anisotropic, not summed over C.
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    reference = (x[..., 1:, :] - x[..., :-1, :]).abs().sum(dim=(-2, -1)) + (
        x[..., :, 1:] - x[..., :, :-1]
    ).abs().sum(dim=(-2, -1))
    per_pixel = tvd.total_variation(x, tv="anisotropic", color="channelwise", reduction="none")
    torch.testing.assert_close(per_pixel.sum(dim=(-2, -1)), reference)


def test_kornia_mean_convention_per_channel() -> None:
    # kornia's reduction="mean": per (N, C), each direction's |differences| averaged over
    # that direction's own count, then added; README gives the per-channel call.
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    reference = (x[..., 1:, :] - x[..., :-1, :]).abs().mean(dim=(-2, -1)) + (
        x[..., :, 1:] - x[..., :, :-1]
    ).abs().mean(dim=(-2, -1))
    ours = torch.stack(
        [
            tvd.total_variation(x[:, c : c + 1], tv="anisotropic", reduction="mean")
            for c in range(3)
        ],
        1,
    )
    torch.testing.assert_close(ours, reference)


@pytest.mark.parametrize("color", ["vectorial", "channelwise"])
@pytest.mark.parametrize(("beta", "eps"), [(1.0, 0.0), (0.7, 0.0), (1.5, 0.05)])
@pytest.mark.parametrize("spacing", [None, (2.0, 1.0, 0.5)])
def test_symmetric_tv_is_the_mean_over_a_half_turn(
    color: str, beta: float, eps: float, spacing: tuple[float, ...] | None
) -> None:
    # Backward differences of u are the forward differences of u turned by 180 degrees
    # (negated, turned back): symmetric TV = (TV(u) + TV(u turned)) / 2, with forward TV.
    x = torch.randn(2, 3, 4, 6, 5, dtype=torch.float64)
    turned = x.flip(-3, -2, -1)
    options = {"beta": beta, "color": color, "eps": eps, "spacing": spacing}
    expected = 0.5 * (
        tvd.total_variation(x, tv="isotropic", **options)
        + tvd.total_variation(turned, tv="isotropic", **options)
    )
    torch.testing.assert_close(tvd.total_variation(x, tv="symmetric", **options), expected)
    # Per pixel, the map holds both stencils' halves; its sum is the total.
    per_pixel = tvd.total_variation(x, tv="symmetric", reduction="none", **options)
    torch.testing.assert_close(per_pixel.sum(dim=(1, 2, 3, 4)), expected)
    mean = tvd.total_variation(x, tv="symmetric", reduction="mean", **options)
    channels = 3 if color == "channelwise" else 1
    torch.testing.assert_close(mean, expected / (channels * 4 * 6 * 5))


def test_symmetric_tv_of_a_ramp_and_a_step() -> None:
    # A ramp of slope 1 along x on a 3 x 4 grid: the forward stencil sees 3 differences per
    # row (the last column has none), the backward stencil 3 as well (the first has none), so
    # symmetric TV is (9 + 9) / 2 = 9. A single bright pixel in the middle of a 3 x 3 zero
    # image: forward |D+ u| is sqrt(2) at the pixel and 1 at its upper and left neighbours,
    # backward |D- u| sqrt(2) at the pixel and 1 at its lower and right neighbours: 2 + sqrt 2.
    ramp = torch.arange(4.0, dtype=torch.float64).repeat(3, 1)
    assert float(tvd.total_variation(ramp, tv="symmetric")) == pytest.approx(9.0)
    dot = torch.zeros(3, 3, dtype=torch.float64)
    dot[1, 1] = 1.0
    assert float(tvd.total_variation(dot, tv="symmetric")) == pytest.approx(2 + 2**0.5)
    assert float(tvd.total_variation(dot, tv="isotropic")) == pytest.approx(2 + 2**0.5)
