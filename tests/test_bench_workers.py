"""Smoke run of benchmarks/bench_workers.py: it runs end to end and every output is written."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_workers.py"


@pytest.mark.slow
def test_bench_workers_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bench_workers", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    figures = module.main(["--images", "4", "--size", "16", "--rounds", "1"])
    assert figures["workers_1"] > 0 and figures["workers_2"] > 0
    assert "speed-up" in capsys.readouterr().out
