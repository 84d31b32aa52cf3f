"""Smoke test of benchmarks/bench_startup.py: one fresh process per command, split read back."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "bench_startup.py"


@pytest.mark.slow
def test_startup_benchmark_times_fresh_processes(tmp_path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("bench_startup", SCRIPT)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    output = tmp_path / "R.md"
    results = bench.main(["--quick", "--write", "--output", str(output)])
    floor = results["floor"]["seconds"]
    for label, row in results["rows"].items():
        record = row["record"]
        # Each command ran in its own process, and its record is the image's.
        assert row["seconds"] > 0 and floor > 0, label
        assert record["status"] == "ok" and record["iterations"] > 0
        assert record["tv"] == ("isotropic" if "isotropic" in label else "symmetric")
        assert 0 < record["solve_seconds"] < row["seconds"]
    text = output.read_text()
    assert "<!-- BEGIN bench_startup.py -->" in text and "import torch" in text
