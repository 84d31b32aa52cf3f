"""Scale: tiling error against overlap, cost against image size, and a 100-megapixel run.

Three parts (``--part``, default all):

``overlap``
    Max abs difference between the tiled and the untiled result at weight 0.1, beta 1, for
    overlaps 16 to 128 px (tiles of 192 px on 384x384 central crops of noisy scikit-image
    images, sigma 25 per PROTOCOL.md, "Noise", both solved in float64 to a relative gap of 1e-8
    so that solver error is far below the tiling error). Chooses the default overlap.
``sizes``
    Solver time and peak memory for 1, 4, 16 and 64 megapixels (grey, beta 1, weight 0.1,
    tol 1e-4, ``solver="auto"``), each size in a fresh process; fits ``time ~ pixels^k``.
    The image is the noisy camera mirrored out to the size (same content statistics).
``big``
    The command line on a 100-megapixel RGB TIFF (10000 x 10000 x 3, uint8) with default
    settings except ``--weight 0.1``: peak RSS of the whole process (decode, tiled solve,
    encode) and wall time. ``--big-max-iter`` caps iterations to shorten the run (memory does
    not depend on it).

Run ``python benchmarks/bench_scale.py [--part P] [--write]``; ``--write`` replaces this
script's section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import RESULTS, central_crop, commit, noisy_image, write_section

ROOT = Path(__file__).resolve().parents[1]
SECTION = "bench_scale.py"
OVERLAP_IMAGES = ["camera", "coins", "astronaut", "coffee"]
OVERLAPS = (16, 32, 48, 64, 96, 128)


def default_model() -> str:
    """What every part solves: ``denoise``'s defaults (the command's too), as read from it."""
    import inspect

    from tvdenoise import denoise

    defaults = inspect.signature(denoise).parameters
    return f"tv={defaults['tv'].default}, {defaults['color'].default} colour"


def part_overlap(args: argparse.Namespace) -> list[str]:
    import torch

    from tvdenoise import denoise
    from tvdenoise.tiling import denoise_tiled

    options = dict(weight=0.1, tol=1e-8, max_iter=100_000, dtype=torch.float64)
    rows = [
        "| image | " + " | ".join(f"overlap {o}" for o in OVERLAPS) + " |",
        "| --- |" + " --- |" * len(OVERLAPS),
    ]
    worst = dict.fromkeys(OVERLAPS, 0.0)
    for name in OVERLAP_IMAGES:
        f = central_crop(noisy_image(name), 384)
        reference = denoise(f, **options)
        cells = []
        for overlap in OVERLAPS:
            tiled = denoise_tiled(f, tile=192, overlap=overlap, **options)
            error = float(np.abs(tiled - reference).max())
            worst[overlap] = max(worst[overlap], error)
            cells.append(f"{error:.1e}")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
        print(rows[-1], flush=True)
    rows.append("| **worst** | " + " | ".join(f"**{worst[o]:.1e}**" for o in OVERLAPS) + " |")
    enough = [o for o in OVERLAPS if worst[o] < 1e-3]
    return [
        "### Tiling error against overlap",
        "",
        "Max abs difference, tiled (192 px tiles) against untiled, weight 0.1, beta 1, sigma "
        "25, 384x384 crops, float64 solved to a relative gap of 1e-8.",
        "",
        *rows,
        "",
        f"Smallest overlap within 1e-3 on every image: {enough[0] if enough else 'none'} px "
        "(the default, 64 px, leaves a margin).",
    ]


def _status_bytes(field: str) -> int:
    """A memory figure of this process from /proc/self/status (VmRSS, VmHWM), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def one_size(megapixels: int) -> dict[str, float]:
    """Run in a fresh process: time and memory of one solve of ``megapixels``."""
    import torch

    from tvdenoise import denoise

    torch.set_num_threads(2)
    side = round(math.sqrt(megapixels * 1e6))
    base = noisy_image("camera").astype(np.float32)
    image = np.pad(base, ((0, side - base.shape[0]), (0, side - base.shape[1])), "symmetric")
    before = _status_bytes("VmRSS")
    # Reset the peak (VmHWM) to the current RSS so it measures the solve alone (Linux).
    Path("/proc/self/clear_refs").write_text("5")
    start = time.perf_counter()
    _, record = denoise(image, weight=0.1, tol=1e-4, max_iter=5000, return_record=True)
    seconds = time.perf_counter() - start
    peak = _status_bytes("VmHWM")
    return {
        "megapixels": side * side / 1e6,
        "seconds": seconds,
        "iterations": record.iterations,
        "solver": record.solver,
        "peak_bytes": peak,
        "before_bytes": before,
    }


def part_sizes(args: argparse.Namespace) -> list[str]:
    results = []
    for megapixels in args.sizes:
        output = subprocess.run(
            [sys.executable, __file__, "--one-size", str(megapixels)],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        ).stdout
        results.append(json.loads(output.strip().splitlines()[-1]))
        print(results[-1], flush=True)
    pixels = np.log([r["megapixels"] for r in results])
    exponent = float(np.polyfit(pixels, np.log([r["seconds"] for r in results]), 1)[0])
    per_iteration = [r["seconds"] / r["iterations"] for r in results]
    # The smallest size may fit the CPU caches; the fit from the second size on is the
    # memory-bound regime that large images live in.
    tail = (
        float(np.polyfit(pixels[1:], np.log([r["seconds"] for r in results[1:]]), 1)[0])
        if len(results) > 2
        else float("nan")
    )
    exponent_iteration = float(np.polyfit(pixels, np.log(per_iteration), 1)[0])
    rows = [
        "| megapixels | solver | iterations | seconds | ns per pixel-iteration | peak RSS "
        "(MiB) | RSS growth during solve (bytes per pixel) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r, t in zip(results, per_iteration, strict=True):
        growth = (r["peak_bytes"] - r["before_bytes"]) / (r["megapixels"] * 1e6)
        rows.append(
            f"| {r['megapixels']:.1f} | {r['solver']} | {r['iterations']} | {r['seconds']:.2f} "
            f"| {t / (r['megapixels'] * 1e6) * 1e9:.1f} | {r['peak_bytes'] / 2**20:.0f} "
            f"| {growth:.1f} |"
        )
    return [
        "### Cost against size",
        "",
        f'Grey, {default_model()}, beta 1, weight 0.1, tol 1e-4, `solver="auto"`, 2 threads, '
        "one fresh process a size. Peak RSS includes Python, torch and the input image; the "
        "growth is the peak during the solve (VmHWM reset just before it) over the RSS before it.",
        "",
        *rows,
        "",
        f"Fitted exponent: time ~ pixels^{exponent:.2f}; time per iteration ~ "
        f"pixels^{exponent_iteration:.2f} (1 is linear); from {results[1]['megapixels']:.0f} "
        f"megapixels on (working set beyond the caches): time ~ pixels^{tail:.2f}.",
    ]


def make_big(path: Path, side: int) -> None:
    """A 100-megapixel noisy RGB TIFF, built band by band (no float copy of the whole)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    pixels = np.empty((side, side, 3), dtype=np.uint8)
    x = np.arange(side, dtype=np.float32) / side
    for top in range(0, side, 500):
        y = np.arange(top, min(top + 500, side), dtype=np.float32)[:, None] / side
        clean = np.stack(
            [
                0.5 + 0.3 * np.sin(20 * x + 0 * y),
                (x + y) % 0.5 + 0.2,
                0.4 + 0.3 * ((20 * y).astype(int) % 2) + 0 * x,
            ],
            axis=-1,
        )
        band = clean + np.float32(0.1) * rng.standard_normal(clean.shape, dtype=np.float32)
        pixels[top : top + band.shape[0]] = np.clip(band * 255 + 0.5, 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)


def part_big(args: argparse.Namespace) -> list[str]:
    side = args.big_side
    with tempfile.TemporaryDirectory() as folder:
        source, target = Path(folder) / "big.tif", Path(folder) / "big_out.tif"
        make_big(source, side)
        extra = ["--max-iter", str(args.big_max_iter)] if args.big_max_iter else []
        command = [
            sys.executable,
            "-m",
            "tvdenoise",
            str(source),
            "-o",
            str(target),
            "--weight",
            "0.1",
            "--json",
            "-q",
            *extra,
        ]
        start = time.perf_counter()
        done = subprocess.run(
            command,
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        line = json.loads(done.stdout.splitlines()[0])
        size = source.stat().st_size
    print(line, flush=True)
    return [
        "### 100 megapixels through the command line",
        "",
        f"`tvdenoise big.tif -o out.tif --weight 0.1{' ' + ' '.join(extra) if extra else ''}` "
        f"on a {side}x{side}x3 uint8 TIFF ({size / 2**20:.0f} MiB), default --max-memory "
        f"(tiles of {line.get('tile')} px): peak RSS **{peak / 2**30:.2f} GiB** (target < 3 "
        f"GiB), wall {seconds:.0f} s, {line['iterations']} iterations summed over tiles, "
        f"converged: {line['converged']}.",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["overlap", "sizes", "big"], action="append")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--big-side", type=int, default=10_000)
    parser.add_argument("--big-max-iter", type=int, default=0)
    parser.add_argument("--one-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    if args.one_size:
        print(json.dumps(one_size(args.one_size)))
        return
    parts = args.part or ["overlap", "sizes", "big"]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        f"## Scale (`benchmarks/{SECTION}`, {time.strftime('%Y-%m-%d')}, commit {commit()})",
        "",
        f"`python benchmarks/{SECTION}{' --part ' + ' --part '.join(parts) if args.part else ''}`"
        f"; the default model ({default_model()}); load average at start: {load} (2 cores).",
        "",
    ]
    for part in parts:
        lines += {"overlap": part_overlap, "sizes": part_sizes, "big": part_big}[part](args)
        lines.append("")
    lines.append(f"Load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}.")
    print("\n".join(lines))
    if args.write:
        section = (
            SECTION if parts == ["overlap", "sizes", "big"] else f"{SECTION} {'+'.join(parts)}"
        )
        write_section(section, lines, RESULTS)


if __name__ == "__main__":
    main()
