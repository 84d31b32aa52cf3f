"""Smoke test of benchmarks/bench_iteration.py: both kernels timed, the section written."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tvdenoise.solvers import native

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "bench_iteration.py"


@pytest.mark.slow
def test_iteration_benchmark_times_both_kinds_and_kernels(tmp_path, monkeypatch) -> None:
    if native.load() is None:
        pytest.skip("no C compiler: the native kernel cannot be built here")
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("bench_iteration", SCRIPT)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    output = tmp_path / "R.md"
    results = bench.main(["--quick", "--threads", "1", "--iterations", "3", "--write",
                          "--output", str(output)])  # fmt: skip
    assert results["kernels"][-1] == "current"
    for rows in results["results"].values():
        assert {row["tv"] for row in rows} == {"isotropic", "symmetric"}
        assert {row["kernel"] for row in rows} == set(results["kernels"])
        for row in rows:
            assert row["iteration_cpu_ms"] > 0 and row["measure_cpu_ms"] > 0
    text = output.read_text()
    assert "<!-- BEGIN bench_iteration.py -->" in text and "symmetric / isotropic" in text
    # One table row per size, kernel and thread count.
    assert len(results["lines"]) == 2 + len(results["results"]) * len(results["kernels"])
