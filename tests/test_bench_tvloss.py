"""Smoke test of benchmarks/bench_tvloss.py: every user loss and its TVLoss agree and are timed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "bench_tvloss.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_tvloss", SCRIPT)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_tvloss_benchmark_runs_on_tiny_shapes(tmp_path) -> None:
    bench = _bench()
    output = tmp_path / "R.md"
    results = bench.main(["--smoke", "--no-memory", "--repeats", "1", "--output", str(output)])
    assert len(results["rows"]) == len(bench.SMOKE_SHAPES) * len(bench.LOSSES)
    for row in results["rows"]:
        assert row["user_ms"] > 0 and row["ours_ms"] > 0 and row["passes"] > 0
    assert not output.exists()  # --smoke writes nothing
    assert any(line.startswith("Targets:") for line in results["lines"])


def test_each_user_loss_is_the_tvloss_it_is_compared_with() -> None:
    # The formulas written out in the benchmark, on a volume and an image, in float64:
    # the TVLoss options listed beside each give the same number (what makes the timing fair).
    bench = _bench()
    for shape in ((2, 3, 7, 9), (2, 1, 4, 5, 6)):
        x = torch.rand(shape, dtype=torch.float64)
        for name, (user, options) in bench.LOSSES.items():
            ours = bench.TVLoss(**options, backend="torch")(x)
            assert torch.allclose(user(x), ours, rtol=1e-10), name


def test_peak_memory_counts_at_least_the_gradient() -> None:
    bench = _bench()
    name = next(iter(bench.LOSSES))
    shape = (1, 1, 1024, 1024)  # 4 MiB of float32
    assert 3.5 <= bench.peak_memory(shape, name, "ours") < 4 * 4


def test_parts_benchmark_prints_both_tables_on_tiny_shapes(capsys) -> None:
    path = SCRIPT.with_name("bench_tvloss_parts.py")
    spec = importlib.util.spec_from_file_location("bench_tvloss_parts", path)
    assert spec is not None and spec.loader is not None
    parts = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(parts)
    parts.main(["--smoke", "--rounds", "2"])
    parts.main(["paths", "--smoke", "--rounds", "2"])
    lines = capsys.readouterr().out.splitlines()
    rows = [line for line in lines if line.startswith("| (")]
    assert len(rows) == 2 * len(parts.PICK)  # the two smoke shapes
    for row in rows:
        cells = [float(cell) for cell in row.split(" | ")[2:-1]]
        assert all(cell >= 0 for cell in cells) and cells[0] > 0  # the pass took time
    options = [line for line in lines if line.startswith("| ") and line.split(" | ")[0][2:] in
               parts.PATHS]  # fmt: skip
    assert len(options) == len(parts.PATHS)
    for line in options:
        assert line.rstrip(" |").endswith("x")
