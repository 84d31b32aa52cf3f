"""Milliseconds per iteration of the fused ROF kernel, symmetric TV against isotropic (forward)
TV, and of its gap measure, the kernel of this tree against a reference commit's, in one
process.

For each size (float32, vectorial colour) and TV kind, the buffers are allocated once (this
machine's first-touch page faults cost about 2 s per GB) and shared by both kernels; each
round runs ``--iterations`` iterations and one measure through each kernel in turn, with the
solver's own wavefront depth and thread rule, and the best round is reported: wall time and
CPU time (the calling thread's on 1 thread, the process's on more), with the load average.
The reference kernel is ``tvdenoise/solvers/_rof_kernel.c`` at ``--reference`` (git), built
like the current one.

    PYTHONPATH=. python benchmarks/bench_iteration.py --write   # RESULTS.md section
    PYTHONPATH=. python benchmarks/bench_iteration.py --quick   # small sizes (tests)

(``PYTHONPATH=.`` makes the tree's package the one timed where another checkout is installed.)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from common import RESULTS, write_section

from tvdenoise import native as compiled
from tvdenoise.fidelity import L2Fidelity
from tvdenoise.ops import difference_norm_squared
from tvdenoise.solvers import Problem, native
from tvdenoise.solvers.rof import DEFAULT_GAMMA, _NativeIteration

SECTION = "bench_iteration.py"
ROOT = Path(__file__).resolve().parents[1]
#: The commit before the vectorised symmetric kernel (issue 25).
REFERENCE = "3807184"
SIZES = {"12 MP": (3000, 4000), "1 MP": (1000, 1000)}
QUICK_SIZES = {"0.1 MP": (250, 400), "0.03 MP": (120, 250)}
KINDS = ("isotropic", "symmetric")


def reference_kernel(commit: str) -> native.NativeKernel | None:
    """The ROF kernel at ``commit``, compiled like the current one; None without git."""
    try:
        source = subprocess.run(
            ["git", "show", f"{commit}:tvdenoise/solvers/_rof_kernel.c"],
            capture_output=True,
            check=True,
            cwd=ROOT,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    path = Path(tempfile.mkdtemp()) / "_rof_kernel_reference.c"
    path.write_bytes(source)
    built = compiled.build(path, "rof_kernel_reference", ("-fno-trapping-math",), isa=True)
    return None if built is None else native.NativeKernel(built.library, built.path, 0.0)


def _cpu(threads: int) -> float:
    return time.thread_time() if threads == 1 else time.process_time()


def time_kind(
    shape: tuple[int, int],
    tv: str,
    kernels: dict[str, native.NativeKernel],
    threads: tuple[int, ...],
    iterations: int,
    rounds: int,
) -> list[dict[str, Any]]:
    """Best-of-rounds figures for each thread count and kernel on one size and TV kind."""
    h, w = shape
    f = torch.rand((1, 3, h, w), generator=torch.Generator().manual_seed(5))
    problem = Problem(f, 0.07, 1.0, tv, "vectorial", L2Fidelity())
    p = f.new_zeros((1, 3, problem.dual_components, h, w))
    u, ubar = f.clone(), f.clone()
    rows = []
    for count in threads:
        torch.set_num_threads(count)
        runners = {}
        for name, kernel in kernels.items():
            runner = _NativeIteration(problem, u, p, kernel)
            runner.ubar = ubar
            runners[name] = runner
        step = [0.25, 1.0 / (difference_norm_squared(2, symmetric=problem.symmetric) * 0.25)]
        best: dict[str, list[float]] = {name: [float("inf")] * 4 for name in runners}
        load = [os.getloadavg()[0]]
        for _ in range(rounds):
            for name, runner in runners.items():
                wall, cpu = time.perf_counter(), _cpu(count)
                runner.run(iterations, step, DEFAULT_GAMMA)
                run_wall, run_cpu = time.perf_counter() - wall, _cpu(count) - cpu
                wall, cpu = time.perf_counter(), _cpu(count)
                runner.measure(problem, 0.9)
                measure_wall, measure_cpu = time.perf_counter() - wall, _cpu(count) - cpu
                figures = (
                    run_wall / iterations,
                    run_cpu / iterations,
                    measure_wall,
                    measure_cpu,
                )
                best[name] = [min(a, 1e3 * b) for a, b in zip(best[name], figures, strict=True)]
        load.append(os.getloadavg()[0])
        depth = next(iter(runners.values())).depth
        for name, figures in best.items():
            rows.append(
                {
                    "tv": tv,
                    "threads": count,
                    "kernel": name,
                    "depth": depth,
                    "iteration_wall_ms": figures[0],
                    "iteration_cpu_ms": figures[1],
                    "measure_wall_ms": figures[2],
                    "measure_cpu_ms": figures[3],
                    "load": (min(load), max(load)),
                }
            )
    torch.set_num_threads(max(threads))
    return rows


def table(results: dict[str, list[dict[str, Any]]], reference: str) -> list[str]:
    """The markdown table: one row per size, threads and kernel, both kinds side by side."""
    lines = [
        "| size | threads | kernel | isotropic: ms/iteration wall, CPU | symmetric: ms/iteration "
        "wall, CPU | symmetric / isotropic (CPU) | measure ms CPU: isotropic, symmetric | "
        "load |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for size, rows in results.items():
        keys = sorted({(r["threads"], r["kernel"]) for r in rows}, key=lambda k: (k[0], k[1]))
        for count, kernel in keys:
            by_kind = {r["tv"]: r for r in rows if (r["threads"], r["kernel"]) == (count, kernel)}
            iso, sym = by_kind["isotropic"], by_kind["symmetric"]
            loads = [value for r in (iso, sym) for value in r["load"]]
            label = kernel if kernel == "current" else f"reference ({reference})"
            lines.append(
                f"| {size} | {count} | {label} | {iso['iteration_wall_ms']:.1f}, "
                f"{iso['iteration_cpu_ms']:.1f} | {sym['iteration_wall_ms']:.1f}, "
                f"{sym['iteration_cpu_ms']:.1f} | "
                f"{sym['iteration_cpu_ms'] / iso['iteration_cpu_ms']:.2f} | "
                f"{iso['measure_cpu_ms']:.1f}, {sym['measure_cpu_ms']:.1f} | "
                f"{min(loads):.1f}-{max(loads):.1f} |"
            )
    return lines


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, 2 rounds")
    parser.add_argument("--iterations", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--reference", default=REFERENCE, help="git commit of the reference")
    parser.add_argument("--write", action="store_true", help="write the RESULTS.md section")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    current = native.load()
    if current is None:
        raise SystemExit("bench_iteration.py: no C compiler, the fused kernel cannot be built")
    kernels = {"current": current}
    reference = reference_kernel(args.reference)
    if reference is not None:
        kernels = {"reference": reference, **kernels}
    sizes = QUICK_SIZES if args.quick else SIZES
    rounds = 2 if args.quick else args.rounds
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results: dict[str, list[dict[str, Any]]] = {}
    for size, shape in sizes.items():
        results[size] = []
        for tv in KINDS:
            rows = time_kind(shape, tv, kernels, tuple(args.threads), args.iterations, rounds)
            results[size].extend(rows)
            for row in rows:
                print(size, row, flush=True)
    lines = table(results, args.reference)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    header = [
        f"## Symmetric iteration (`benchmarks/bench_iteration.py`, {started}, commit {commit})",
        "",
        f"Fused ROF kernel, float32 vectorial colour (3 channels), {args.iterations} iterations "
        f"per round through each kernel in turn, best of {rounds} rounds; CPU is the calling "
        "thread's time on 1 thread and the process's on 2; the measure is one gap check "
        "(energy and dual value in double). torch "
        f"{torch.__version__}; load average over each row's rounds in the last column.",
        "",
    ]
    if args.write:
        write_section(SECTION, header + lines, args.output)
    print("\n".join(lines))
    return {"results": results, "lines": lines, "kernels": list(kernels)}


if __name__ == "__main__":
    main()
