"""Smoke test of benchmarks/bench_formats.py: tiny clips, chunk memory, seams and FITS timing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "bench_formats.py"

pytest.importorskip("av")
pytest.importorskip("astropy")


@pytest.mark.slow
def test_formats_benchmark_runs_every_part(tmp_path) -> None:
    spec = importlib.util.spec_from_file_location("bench_formats", SCRIPT)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    output = tmp_path / "R.md"
    lines = bench.main(["--quick", "--write", "--output", str(output)])
    rows = {line.split("|")[2].strip(): line for line in lines if line.startswith("| 240p |")}
    assert set(rows) == {"decode+encode", "frames", "volume"}
    for mode in ("frames", "volume"):
        cells = [cell.strip() for cell in rows[mode].split("|")]
        # Frames per second measured, and the denoised clip above the noisy one's PSNR.
        assert float(cells[3]) > 0 and cells[6].endswith("dB")
        noisy = float(rows["decode+encode"].split("|")[6].split()[0])
        assert float(cells[6].split()[0]) > noisy
    # The whole-volume seam row is 0 by definition; chunks with an overlap stay close to it.
    seam = [line for line in lines if line.startswith("| 4 |") and "/255" in line]
    assert seam and float(seam[0].split("|")[2].split("/")[0]) <= 30
    assert any(line.startswith("| read |") for line in lines)
    text = output.read_text()
    assert "<!-- BEGIN bench_formats -->" in text and "## Formats: FITS and video" in text
