"""Throughput of ``tvdenoise FOLDER --workers N`` against ``--workers 1``, end to end.

Makes a folder of small noisy images, runs the real command on it with 1 and with N worker
processes (alternating, several rounds, fresh output folder each time), and prints the median
wall times and their ratio. The whole command is timed: interpreter start, torch import (once
in the main process for one worker, once in the forkserver for N), reading, solving, writing.

    python benchmarks/bench_workers.py                 # 200 images of 128x128 RGB, N = 2
    python benchmarks/bench_workers.py --images 20 --rounds 1 --size 32   # smoke run

The issue's target: on a 2-core machine ``--workers 2`` is at least 1.6x faster than
``--workers 1`` on 200 small images. Run it on a quiet machine: other load skews the ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def make_images(folder: Path, count: int, size: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0:size, 0:size] / size
    for i in range(count):
        clean = np.stack([0.5 + 0.3 * np.sin(6 * x + i), (x > 0.5) * 0.6 + 0.2, y], axis=-1)
        noisy = np.clip(clean + 0.1 * rng.standard_normal(clean.shape), 0, 1)
        Image.fromarray(np.round(noisy * 255).astype(np.uint8)).save(folder / f"{i:04d}.png")


def run_once(folder: Path, out: Path, workers: int, extra: tuple[str, ...] = ()) -> float:
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "tvdenoise", str(folder), "-o", str(out), "-q", *extra]
    start = time.perf_counter()
    subprocess.run([*command, "--workers", str(workers)], check=True, env=env)
    seconds = time.perf_counter() - start
    expected = len(list(folder.glob("*.png")))
    written = len(list(out.glob("*.png")))
    if written != expected:
        raise SystemExit(f"--workers {workers} wrote {written} of {expected} outputs")
    return seconds


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--weight", default=None, help="fixed weight (default: auto)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        folder, out = Path(tmp) / "in", Path(tmp) / "out"
        make_images(folder, args.images, args.size)
        extra = ("--weight", args.weight) if args.weight else ()
        one, many = [], []
        for _ in range(args.rounds):
            one.append(run_once(folder, out, 1, extra))
            many.append(run_once(folder, out, args.workers, extra))
    t1, tn = statistics.median(one), statistics.median(many)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"{args.images} images of {args.size}x{args.size} RGB, {cores} cores, "
        f"weight {args.weight or 'auto'}, median of {args.rounds} rounds"
    )
    print(f"--workers 1: {t1:.2f} s  (runs: {', '.join(f'{t:.2f}' for t in one)})")
    print(f"--workers {args.workers}: {tn:.2f} s  (runs: {', '.join(f'{t:.2f}' for t in many)})")
    print(f"speed-up: {t1 / tn:.2f}x")
    return {"workers_1": t1, f"workers_{args.workers}": tn, "speedup": t1 / tn}


if __name__ == "__main__":
    main()
