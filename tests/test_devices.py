"""Devices and batching: --device auto, --batch-size, half precision, CPU/GPU agreement."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from tvdenoise import denoise
from tvdenoise.batch import _solve_batches
from tvdenoise.cli import app
from tvdenoise.denoising import resolve_device
from tvdenoise.errors import InvalidParameterError
from tvdenoise.planning import Job
from tvdenoise.settings import RunSettings

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
runner = CliRunner()


def _png(path, shape, seed):
    rng = np.random.default_rng(seed)
    clean = np.zeros(shape)
    clean[shape[0] // 4 : 3 * shape[0] // 4, shape[1] // 4 : 3 * shape[1] // 4] = 0.8
    noisy = np.clip(clean + 0.1 * rng.standard_normal(shape), 0, 1)
    Image.fromarray(np.rint(noisy * 255).astype(np.uint8)).save(path)


def test_auto_device_is_cuda_only_when_present():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(InvalidParameterError, match="CUDA is not available"):
            resolve_device("cuda")


def test_half_precision_inputs_are_solved_in_float32_and_keep_their_dtype():
    # Half working precision is refused (benchmarks/bench_precision.py: float16 moves results
    # by up to 1.5e-2, bfloat16 costs up to 2.1 dB); half inputs are promoted, solved, cast back.
    x = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    reference = denoise(x, weight=0.1)
    for dtype, resolution in ((torch.float16, 1e-3), (torch.bfloat16, 8e-3)):
        out = denoise(x.to(dtype), weight=0.1)
        assert out.dtype == dtype
        # Only the input's and output's rounding differ from the float32 solve.
        assert (out.float() - reference).abs().max() <= 2 * resolution
    with pytest.raises(InvalidParameterError, match=r"float32 or torch\.float64"):
        denoise(x, weight=0.1, dtype=torch.float16)


def test_batching_needs_a_fixed_weight_and_single_pages():
    assert RunSettings.of(batch_size=4, weight=0.1).batching
    assert not RunSettings.of(batch_size=1, weight=0.1).batching
    assert not RunSettings.of(batch_size=4, weight="auto").batching
    assert not RunSettings.of(batch_size=4, weight=0.1, stack="frames").batching


def test_same_size_images_are_solved_as_one_batch(tmp_path):
    for index, shape in enumerate([(40, 50, 3), (40, 50, 3), (30, 50, 3), (40, 50, 3)]):
        _png(tmp_path / f"{index}.png", shape, index)
    (tmp_path / "4.png").write_bytes(b"not a png")
    jobs = [Job(tmp_path / f"{i}.png", tmp_path / f"{i}_out.png") for i in range(5)]
    solved = _solve_batches(jobs, RunSettings.of(weight=0.1, batch_size=5), None, None)
    # The three 40x50 images form a batch; the odd size and the broken file are left alone.
    assert sorted(solved) == [0, 1, 3]
    records = {id(solved[i][2]) for i in solved}
    assert len(records) == 1
    for index in solved:
        image, pixels, _ = solved[index]
        alone = denoise(image.pixels, weight=0.1)
        assert pixels.dtype == np.uint8 and pixels.shape == image.pixels.shape
        # Same problem; the batch runs until its slowest image converges, so within tolerance.
        assert np.abs(pixels.astype(int) - alone.astype(int)).max() <= 1


def test_cli_batch_size_matches_one_by_one(tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    for index in range(5):
        _png(source / f"img{index}.png", (36, 44), index)
    # Sorted after the images, so the first chunk of 4 is img0..img3.
    _png(source / "odd.png", (20, 30), 9)
    (source / "zbroken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    outputs = {}
    for size in (1, 4):
        target = tmp_path / f"out{size}"
        result = runner.invoke(
            app,
            [
                str(source),
                "-o",
                str(target),
                "--weight",
                "0.1",
                "--batch-size",
                str(size),
                "--json",
            ],
        )
        assert result.exit_code == 1, result.output  # the broken file fails, the rest do not
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        summary = lines[-1]
        assert summary["ok"] == 6 and summary["failed"] == 1
        outputs[size] = {p.name: np.asarray(Image.open(p), dtype=int) for p in target.iterdir()}
        solves = {
            line["input"].rsplit("/", 1)[-1]: (line["iterations"], line["solve_seconds"])
            for line in lines
            if line.get("status") == "ok"
        }
        first_four = {solves[f"img{i}.png"] for i in range(4)}
        # Batched, img0..img3 share one solve (same iterations and seconds); one by one, each
        # has its own solve time.
        assert len(first_four) == (1 if size == 4 else 4)
    assert outputs[1].keys() == outputs[4].keys()
    for name in outputs[1]:
        assert np.abs(outputs[1][name] - outputs[4][name]).max() <= 1


@cuda
def test_cpu_and_gpu_agree():
    rng = np.random.default_rng(0)
    image = np.clip(0.5 + 0.1 * rng.standard_normal((2, 3, 96, 128)), 0, 1).astype(np.float32)
    x = torch.from_numpy(image)
    for beta, solver in ((1.0, "auto"), (1.0, "chambolle_pock"), (1.5, "auto")):
        cpu = denoise(x, weight=0.1, beta=beta, solver=solver, tol=1e-6, max_iter=5000)
        gpu = denoise(
            x, weight=0.1, beta=beta, solver=solver, tol=1e-6, max_iter=5000, device="cuda"
        )
        assert gpu.device.type == "cuda"
        assert (cpu - gpu.cpu()).abs().max() < 1e-4


@cuda
def test_cli_uses_cuda_with_device_auto(tmp_path):
    _png(tmp_path / "a.png", (32, 32, 3), 0)
    result = runner.invoke(app, [str(tmp_path / "a.png"), "--weight", "0.1", "--json", "-q"])
    assert result.exit_code == 0
    assert json.loads(result.stdout.splitlines()[0])["device"].startswith("cuda")
