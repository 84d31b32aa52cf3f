"""Smoke test of benchmarks/bench_precision.py on a tiny crop: a certified reference, one
row per image, dtype and iteration count, and the trend over the counts."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "bench_precision.py"


def _bench():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_precision", SCRIPT)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_reference_is_certified_by_its_gap() -> None:
    bench = _bench()
    _, f = bench.noisy("camera", 24)
    reference = bench.certified_reference(f, 1e-10)
    assert reference.gap <= 1e-10 and reference.iterations > 0
    # The bound sqrt(2 gap E) holds for the 1-strongly convex L2 energy: a longer run (an
    # independent, tighter solution) lies within it.
    tighter = bench.certified_reference(f, 1e-13)
    assert math.sqrt(((reference.u - tighter.u) ** 2).sum()) <= reference.distance_bound


def test_benchmark_measures_each_dtype_at_each_iteration_count() -> None:
    bench = _bench()
    lines = bench.main(["--images", "camera", "--size", "24", "--iterations", "5", "20"])
    rows = [line for line in lines if line.startswith("| camera |")]
    assert len(rows) == 4 * 2  # four dtypes, two counts
    float64 = [row for row in rows if row.startswith("| camera | float64 |")]
    # float64 against the float64 run of its own count is exactly 0.
    assert all(row.split("|")[4].strip() == "0.00e+00" for row in float64)
    assert "gap" in lines[2] and "<= 1e-08" in lines[2]
    assert [line.split(":")[0] for line in lines if line.startswith("- ")] == [
        "- float32",
        "- bfloat16",
        "- float16",
    ]
