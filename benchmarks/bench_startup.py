"""The whole command on a small image, as a person runs it: ``tvdenoise image.png`` in a fresh
process, against ``python -c "import torch"`` (the floor any PyTorch program pays).

The image is PROTOCOL.md's camera (512x512 grey) with its sigma 25 noise, written as 8-bit
PNG. Each command runs ``--repeats`` times in a fresh interpreter (the first run, which fills
the compiled-kernel cache, is not counted); the median wall time is reported, with the
split the command's ``--json`` record gives (read, noise estimate and weight search, solve,
write) for the default command and for ``--tv isotropic``, and the load average.

    python benchmarks/bench_startup.py --write    # RESULTS.md section
    python benchmarks/bench_startup.py --quick    # one repeat (tests)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import RESULTS, noisy_image, write_section
from common import commit as current_commit

SECTION = "bench_startup.py"
ROOT = Path(__file__).resolve().parents[1]


def command() -> list[str]:
    """The console script next to this interpreter, else ``python -m tvdenoise``."""
    script = Path(sys.executable).with_name("tvdenoise")
    return [str(script)] if script.exists() else [sys.executable, "-m", "tvdenoise"]


def timed(arguments: list[str]) -> tuple[float, str]:
    """Wall seconds of one fresh process and its stdout."""
    start = time.perf_counter()
    done = subprocess.run(arguments, capture_output=True, text=True, check=True, cwd=ROOT)
    return time.perf_counter() - start, done.stdout


def measure(arguments: list[str], repeats: int) -> dict[str, Any]:
    timed(arguments)  # the first run builds the kernel cache, if it is empty
    runs = [timed(arguments) for _ in range(repeats)]
    seconds = [run[0] for run in runs]
    record: dict[str, Any] = {}
    for line in runs[-1][1].splitlines():
        if line.strip().startswith("{"):
            parsed = json.loads(line)
            if parsed.get("type") == "image":
                record = parsed
    return {"seconds": statistics.median(seconds), "all": seconds, "record": record}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="one repeat")
    parser.add_argument("--write", action="store_true", help="update RESULTS.md")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    from PIL import Image

    work = Path(tempfile.mkdtemp(prefix="bench_startup_"))
    try:
        noisy = np.clip(np.rint(noisy_image("camera") * 255), 0, 255).astype(np.uint8)
        source = work / "camera.png"
        Image.fromarray(noisy).save(source)
        load_start = os.getloadavg()[0]
        floor = measure([sys.executable, "-c", "import torch"], repeats)
        rows = {}
        for label, extra in (("default", []), ("--tv isotropic", ["--tv", "isotropic"])):
            out = work / f"out_{len(rows)}.png"
            arguments = [*command(), str(source), "-o", str(out), "--overwrite", "--json"]
            rows[label] = measure([*arguments, "--quiet", *extra], repeats)
        load_end = os.getloadavg()[0]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = table(floor, rows, repeats, load_start, load_end)
    print("\n".join(lines))
    if args.write:
        write_section(SECTION, lines, args.output)
    return {"floor": floor, "rows": rows, "lines": lines}


def table(
    floor: dict[str, Any], rows: dict[str, Any], repeats: int, load_start: float, load_end: float
) -> list[str]:
    commit = current_commit()
    lines = [
        f"## A 512x512 image through the whole command ({SECTION}, "
        f"{time.strftime('%Y-%m-%d')}, commit {commit})",
        "",
        f"`python benchmarks/{SECTION}`: camera 512x512 grey 8-bit PNG, sigma 25; each command "
        f"in a fresh process, median of {repeats} (after one uncounted run); load "
        f'{load_start:.1f}-{load_end:.1f}. `python -c "import torch"`: '
        f"{floor['seconds']:.2f} s.",
        "",
        "| command | wall s | more than importing torch | read | noise estimate + weight "
        "| solve | write | iterations |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, row in rows.items():
        record = row["record"]
        lines.append(
            f"| `tvdenoise camera.png{'' if label == 'default' else ' ' + label}` | "
            f"{row['seconds']:.2f} | {row['seconds'] - floor['seconds']:.2f} | "
            f"{record.get('read_seconds', 0.0) * 1e3:.0f} ms | "
            f"{record.get('weight_seconds', 0.0) * 1e3:.0f} ms | "
            f"{record.get('solve_seconds', 0.0) * 1e3:.0f} ms | "
            f"{record.get('write_seconds', 0.0) * 1e3:.0f} ms | {record.get('iterations')} |"
        )
    return lines


if __name__ == "__main__":
    main()
