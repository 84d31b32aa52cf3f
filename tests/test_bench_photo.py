"""Smoke test of benchmarks/bench_photo.py: tiny photos, every column measured and sane."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "bench_photo.py"


@pytest.mark.slow
def test_photo_benchmark_runs_every_column(tmp_path) -> None:
    spec = importlib.util.spec_from_file_location("bench_photo", SCRIPT)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    output = tmp_path / "R.md"
    results = bench.main(["--quick", "--kinds", "natural", "--write", "--output", str(output)])
    rows = results["rows"]
    assert [row["sigma"] for row in rows] == [15.0, 5.0]
    for row in rows:
        default, fixed = row["default"], row["fixed"]
        # The default command denoises (PSNR above the noisy photo) and reports its split.
        assert default["psnr"] > row["noisy_psnr"] + 3 and fixed["psnr"] > row["noisy_psnr"] + 3
        assert all(seconds >= 0 for seconds in default["split"].values() if seconds is not None)
        assert default["split"]["search"] > 0 and fixed["split"]["search"] == 0
        assert default["iterations"] > 0 and default["stop_reason"] in ("precision", "tol")
        # --weight W is the weight the default chose, so both solve the same problem.
        assert fixed["weight"] == pytest.approx(default["weight"], rel=1e-3)
        for other in ("skimage", "skimage_oracle", "opencv"):
            assert row[other]["seconds"] > 0 and row[other]["psnr"] > row["noisy_psnr"]
        assert row["skimage_oracle"]["psnr"] >= row["skimage"]["psnr"]
    text = output.read_text()
    assert "<!-- BEGIN bench_photo.py -->" in text and "natural 0.0 MP sigma 15" in text
