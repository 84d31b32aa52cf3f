"""The soak benchmark at a small size: steady memory, and nothing lost when killed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


@pytest.mark.slow
def test_quick_soak_keeps_memory_flat_and_loses_nothing_when_killed(tmp_path: Path) -> None:
    pytest.importorskip("psutil")
    import bench_soak

    results = bench_soak.main(["--quick", "--folder", str(tmp_path)])
    small = results["small 128x96"]
    assert small["statuses"] == {"ok": small["images"]} and small["returncode"] == 0
    # Memory of the main process and of the workers does not grow with the images done.
    assert small["main_last"] <= 1.2 * small["main_first"] + 16
    assert small["worker_last"] <= 1.2 * small["worker_first"] + 16
    kills = results["kills"]
    assert kills["final_returncode"] == 0
    assert kills["missing_or_different"] == [] and kills["extra"] == []
    assert kills["temporaries"] == [] and kills["orphans"] == 0
    assert len(kills["kills"]) == 2
