"""Tiled denoising: tile layout, blend weights, agreement with the untiled solution, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from tvdenoise import denoise
from tvdenoise.batch import tile_size
from tvdenoise.cli import app
from tvdenoise.config import parse_memory
from tvdenoise.errors import InvalidParameterError
from tvdenoise.image_io import ValueRange
from tvdenoise.settings import RunSettings
from tvdenoise.tiling import (
    DEFAULT_MAX_MEMORY,
    DEFAULT_OVERLAP,
    denoise_tiled,
    plan_tiles,
    solver_bytes,
    tile_for_budget,
)


@given(
    size=st.integers(1, 400),
    tile=st.integers(8, 128),
    overlap_fraction=st.floats(0.0, 0.9),
)
def test_tiles_cover_the_axis_with_weights_summing_to_one(size, tile, overlap_fraction):
    overlap = int(overlap_fraction * tile)
    plan = plan_tiles(size, tile, overlap)
    total = np.zeros(size)
    for (start, stop), weight in zip(plan.spans, plan.weights, strict=True):
        assert 0 <= start < stop <= size
        assert stop - start == min(tile, size)
        assert weight.shape == (stop - start,)
        assert (weight >= 0).all()
        total[start:stop] += weight
    np.testing.assert_allclose(total, 1.0, atol=1e-6)
    # Neighbours overlap by at least the requested amount.
    for (_, stop), (start, _) in zip(plan.spans, plan.spans[1:], strict=False):
        assert stop - start >= overlap


def test_pixels_nearest_a_cut_get_no_weight():
    plan = plan_tiles(300, 100, 40)
    first, second = plan.weights[0], plan.weights[1]
    # A quarter of the overlap (10 px) at each cut edge is discarded.
    assert (first[-10:] == 0).all() and (second[:10] == 0).all()
    assert (first[:60] == 1).all()


def test_overlap_must_be_smaller_than_the_tile():
    with pytest.raises(InvalidParameterError, match="smaller than the tile"):
        plan_tiles(100, 32, 32)


def test_constant_image_stays_constant():
    image = np.full((90, 130, 3), 0.37, dtype=np.float32)
    out = denoise_tiled(image, tile=40, overlap=16, weight=0.2)
    np.testing.assert_allclose(out, 0.37, atol=1e-6)


@pytest.fixture(scope="module")
def noisy_camera() -> np.ndarray:
    from skimage import data, img_as_float

    clean = img_as_float(data.camera())[100:420, 100:420]
    return clean + 0.1 * np.random.default_rng(3).standard_normal(clean.shape)


def test_tiled_matches_untiled_at_the_default_overlap(noisy_camera):
    # Issue 8's criterion: within 1e-3 max abs difference at weight 0.1, beta 1, with the
    # default overlap. Both solved to a tight gap in float64, so the solver's own error is far
    # below the tiling error being measured.
    options = dict(weight=0.1, tol=1e-8, max_iter=50_000, dtype=torch.float64)
    reference = denoise(noisy_camera, **options)
    tiled = denoise_tiled(noisy_camera, tile=160, overlap=DEFAULT_OVERLAP, **options)
    assert np.abs(tiled - reference).max() < 1e-3
    # ... and the seams matter: with almost no overlap the error is an order of magnitude larger.
    rough = denoise_tiled(noisy_camera, tile=160, overlap=4, **options)
    assert np.abs(rough - reference).max() > 5e-3


def test_colour_integer_image_keeps_dtype_and_matches_untiled():
    rng = np.random.default_rng(0)
    clean = np.zeros((150, 170, 3))
    clean[40:110, 50:130] = (0.8, 0.4, 0.2)
    noisy = np.clip(clean + 0.08 * rng.standard_normal(clean.shape), 0, 1)
    pixels = np.rint(noisy * 65535).astype(np.uint16)
    tiled, record = denoise_tiled(pixels, tile=96, overlap=48, weight=0.1, return_record=True)
    whole = denoise(pixels, weight=0.1)
    assert tiled.dtype == np.uint16 and tiled.shape == pixels.shape
    assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 0.002 * 65535
    assert record.converged and record.iterations > 0


def test_span_maps_float_data_like_the_command_line():
    # A [0, 4000] microscope frame: denoised on the unit scale, returned on its own scale.
    rng = np.random.default_rng(1)
    frame = (2000 + 400 * rng.standard_normal((80, 90))).astype(np.float32)
    span = ValueRange(0.0, float(frame.max()))
    tiled = denoise_tiled(frame, tile=48, overlap=16, span=span, weight=0.05)
    whole = denoise(frame / span.high, weight=0.05) * span.high
    assert tiled.dtype == np.float32
    assert np.abs(tiled - whole).max() < 0.01 * span.high


def test_auto_weight_is_chosen_once_for_all_tiles(noisy_camera):
    image = noisy_camera.astype(np.float32)
    out, record = denoise_tiled(image, tile=128, overlap=32, weight="auto", return_record=True)
    choice = record.weight_choice
    assert choice.sigma_estimated and abs(choice.sigma - 0.1) < 0.02
    fixed = denoise_tiled(image, tile=128, overlap=32, weight=choice.weight)
    np.testing.assert_array_equal(out, fixed)


def test_auto_weight_of_a_tiled_image_is_the_whole_image_search(noisy_camera, monkeypatch):
    # With search tiles of 32 pixels (9 of them, from 18,432 pixels), the 320x320 image is
    # searched on the same 3 x 3 tiles and the same central crop's sigma whether it is
    # denoised whole or in memory-bounded tiles of 128: the same weight.
    import tvdenoise.auto_weight as auto_weight

    monkeypatch.setattr(auto_weight, "SEARCH_TILES", 9)
    monkeypatch.setattr(auto_weight, "SEARCH_TILE", 32)
    monkeypatch.setattr(auto_weight, "TILED_FROM", 2 * 9 * 32 * 32)
    monkeypatch.setattr(auto_weight, "SIGMA_SIDE", 200)
    image = noisy_camera.astype(np.float32)
    _, whole = denoise(image, weight="auto", return_record=True)
    _, tiled = denoise_tiled(image, tile=128, overlap=32, weight="auto", return_record=True)
    assert tiled.weight_choice.weight == pytest.approx(whole.weight_choice.weight, rel=1e-5)
    assert tiled.weight_choice.sigma == pytest.approx(whole.weight_choice.sigma, rel=1e-6)
    assert tiled.weight_choice.sigma_estimated and whole.weight_choice.sigma_estimated
    assert len(tiled.weight_choice.trials) == len(whole.weight_choice.trials)


def test_tile_callback_counts_tiles():
    calls = []
    denoise_tiled(
        np.zeros((100, 100)), tile=40, overlap=8, weight=0.1, on_tile=lambda *a: calls.append(a)
    )
    assert calls == [(k, 9) for k in range(1, 10)]


def test_budget_chooses_tiles_that_fit():
    budget = parse_memory(DEFAULT_MAX_MEMORY)
    # A 100-megapixel RGB image does not fit 2 GiB of solver state; its tiles do.
    tile = tile_for_budget(10_000, 10_000, 3, budget)
    assert tile is not None and tile % 64 == 0
    assert solver_bytes(tile, tile, 3) <= budget / 2
    assert tile_for_budget(1000, 1000, 3, budget) is None
    assert tile_size((10_000, 10_000, 3), RunSettings.of(max_memory="2GiB")) == tile
    assert tile_size((500, 400), RunSettings.of(tile=256)) == 256
    assert tile_size((200, 100), RunSettings.of(tile=256)) is None


def test_budget_counts_more_memory_without_the_fused_kernel(monkeypatch):
    # The generic Chambolle-Pock holds several times the fused kernel's state per value, so
    # without a compiler the same budget gives smaller tiles, and a smaller image no longer fits.
    from tvdenoise.solvers import native
    from tvdenoise.tiling import BYTES_PER_VALUE, BYTES_PER_VALUE_GENERIC

    if native.load() is None:
        pytest.skip("no C compiler: the fused kernel's bound is not used here")
    budget = parse_memory(DEFAULT_MAX_MEMORY)
    fused_tile = tile_for_budget(10_000, 10_000, 3, budget)
    side = 2400  # fits with the kernel's bound (0.5 GiB), not with the generic one (3.1 GiB)
    assert tile_for_budget(side, side, 3, budget) is None
    monkeypatch.setattr(native, "load", lambda: None)
    generic_tile = tile_for_budget(10_000, 10_000, 3, budget)
    assert fused_tile is not None and generic_tile is not None and generic_tile < fused_tile
    assert solver_bytes(generic_tile, generic_tile, 3) <= budget / 2
    assert solver_bytes(100, 100, 1) == 100 * 100 * BYTES_PER_VALUE_GENERIC
    assert max(BYTES_PER_VALUE.values()) < BYTES_PER_VALUE_GENERIC
    assert tile_for_budget(side, side, 3, budget) is not None


def test_budget_counts_what_each_solver_holds():
    # A 12-megapixel colour photo fits the default 2 GiB with the fused kernel (29.5 bytes per
    # value, symmetric TV: 1.06 GB), so it is solved whole; a fidelity the kernel does not
    # take counts the generic solver's 192 bytes (6.9 GB) and is tiled.
    from tvdenoise.solvers import native

    if native.load() is None:
        pytest.skip("no C compiler: every solver counts the generic bound here")
    photo = (3000, 4000, 3)
    assert tile_size(photo, RunSettings.of(max_memory="2GiB")) is None
    assert tile_size(photo, RunSettings.of(max_memory="2GiB", tv="isotropic")) is None
    assert tile_size(photo, RunSettings.of(max_memory="900MiB")) is not None
    assert (
        tile_size(photo, RunSettings.of(max_memory="2GiB", fidelity="l1", weight=0.1)) is not None
    )
    assert tile_size(photo, RunSettings.of(max_memory="2GiB", solver="chambolle_pock")) is not None
    assert tile_size(photo, RunSettings.of(max_memory="2GiB", beta=1.5)) is not None
    # Forward TV holds two dual components per value instead of four.
    assert solver_bytes(1000, 1000, 3, tv="isotropic") < solver_bytes(1000, 1000, 3)


def test_parse_memory_rejects_garbage():
    from tvdenoise.errors import ConfigError

    assert parse_memory("1.5GiB") == 3 * 2**29
    for bad in ("", "lots", "-1G", "0", "2 X"):
        with pytest.raises(ConfigError, match="memory size"):
            parse_memory(bad)


runner = CliRunner()


def _noisy_png(path, shape=(150, 210, 3)):
    rng = np.random.default_rng(5)
    clean = np.zeros(shape)
    clean[30:120, 40:170] = 0.7
    noisy = np.clip(clean + 0.1 * rng.standard_normal(shape), 0, 1)
    Image.fromarray(np.rint(noisy * 255).astype(np.uint8)).save(path)


def test_cli_tile_option_matches_untiled(tmp_path):
    source = tmp_path / "in.png"
    _noisy_png(source)
    for name, extra in (("whole.png", []), ("tiled.png", ["--tile", "96", "--tile-overlap", "40"])):
        result = runner.invoke(
            app, [str(source), "--weight", "0.1", "-o", str(tmp_path / name), "--json", *extra]
        )
        assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0]["tile"] == 96
    whole = np.asarray(Image.open(tmp_path / "whole.png"), dtype=int)
    tiled = np.asarray(Image.open(tmp_path / "tiled.png"), dtype=int)
    assert np.abs(whole - tiled).max() <= 1


def test_cli_memory_budget_turns_tiling_on(tmp_path):
    source = tmp_path / "in.png"
    _noisy_png(source, (300, 300, 3))
    # 300 x 300 x 3 values need about 17 MiB of solver state: a 4 MiB budget tiles it.
    result = runner.invoke(
        app, [str(source), "--weight", "0.1", "--max-memory", "4MiB", "--json", "-q"]
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.splitlines()[0])
    assert record["tile"] >= 4 * DEFAULT_OVERLAP
    assert (tmp_path / "in_denoised.png").exists()
    result = runner.invoke(app, [str(source), "--weight", "0.1", "--json", "-q", "--overwrite"])
    assert "tile" not in json.loads(result.stdout.splitlines()[0])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-memory", "lots"], "--max-memory: memory size"),
        (["--tile", "64", "--tile-overlap", "64"], "--tile-overlap (64) must be smaller"),
        (["--tile", "-3"], "--tile must be an integer >= 0"),
    ],
)
def test_cli_bad_tiling_options_are_usage_errors(tmp_path, args, message):
    source = tmp_path / "in.png"
    _noisy_png(source, (20, 20, 3))
    result = runner.invoke(app, [str(source), "--weight", "0.1", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "in_denoised.png").exists()
