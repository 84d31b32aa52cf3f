"""Where TVLoss's forward + backward spends its time, and what each of its options costs.

Two tables, printed (nothing written; the figures go into RESULTS.md by hand, with the load):

- ``parts`` (default): for bench_tvloss.py's shapes and three of its losses, the pass unit
  (``torch.neg(x, out=y)``, and with a fresh output), the kernel alone on one thread (CPU
  time of the calling thread) and on all threads (wall time; into a kept gradient buffer, and
  into a fresh one as TVLoss does), the whole step (wall), its page faults, and the Python
  and autograd work of a step on a tiny input, where the kernel costs nothing.
- ``paths``: each option's fused forward + backward on one thread (CPU time per value), against
  the PyTorch (autograd) path of the same loss and against the fused beta-1 path of its kind.

Figures are the best over interleaved rounds (``--rounds``), so a busy spell of the shared
machine inflates no single one; the load average is printed beside them.

    python benchmarks/bench_tvloss_parts.py                 # parts, all threads
    python benchmarks/bench_tvloss_parts.py paths           # one thread
    python benchmarks/bench_tvloss_parts.py --smoke         # tiny shapes
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
import bench_tvloss as b

from tvdenoise import TVLoss
from tvdenoise import _fused_tv as fused

PICK = (
    "Japanese seed (anisotropic, mean per sample)",
    "Chinese seed (beta 2, style transfer)",
    "naive isotropic (vectorial, sqrt(s + 1e-8))",
)
#: The options of the ``paths`` table: the first of each kind is the reference of its kind.
PATHS: dict[str, dict[str, Any]] = {
    "anisotropic beta 1, eps 0": dict(tv="anisotropic", color="channelwise", eps=0.0),
    "anisotropic beta 1, eps 1e-3": dict(tv="anisotropic", color="channelwise", eps=1e-3),
    "anisotropic beta 0.5": dict(beta=0.5, tv="anisotropic", color="channelwise", eps=0.0),
    "anisotropic beta 1.5": dict(beta=1.5, tv="anisotropic", color="channelwise", eps=0.0),
    "anisotropic beta 1.3": dict(beta=1.3, tv="anisotropic", color="channelwise", eps=0.0),
    "anisotropic vectorial": dict(tv="anisotropic", color="vectorial", eps=1e-3),
    "isotropic beta 1": dict(tv="isotropic", eps=1e-4, reduction="sum"),
    "isotropic beta 0.5": dict(beta=0.5, tv="isotropic", eps=1e-4, reduction="sum"),
    "isotropic beta 1.5": dict(beta=1.5, tv="isotropic", eps=1e-4, reduction="sum"),
    "isotropic channelwise": dict(tv="isotropic", color="channelwise", eps=1e-4),
    "isotropic reduction none": dict(tv="isotropic", eps=1e-4, reduction="none"),
    "symmetric vectorial": dict(tv="symmetric", eps=1e-4, reduction="sum"),
    "symmetric channelwise": dict(tv="symmetric", color="channelwise", eps=1e-4),
}


def load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def best_over_rounds(
    functions: dict[Any, Callable[[], object]], rounds: int, clock: Callable[[], float]
) -> dict[Any, float]:
    """The best time of each function over interleaved rounds (each called once per round)."""
    best = {key: float("inf") for key in functions}
    for _ in range(rounds):
        for key, function in functions.items():
            started = clock()
            function()
            best[key] = min(best[key], clock() - started)
    return best


def step_of(loss: TVLoss, x: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        leaf = x.detach().requires_grad_()
        out = loss(leaf)
        (out.sum() if out.dim() else out).backward()

    return step


def kernel_call(x: torch.Tensor, loss: TVLoss) -> Callable[[int, torch.Tensor], None]:
    """tv_gradient as TVLoss calls it (its options read off the graph), into a given buffer."""
    out = loss(x.detach().requires_grad_())
    options = out.grad_fn.options  # type: ignore[union-attr]
    plan = fused._plan(tuple(x.shape), options)
    value = torch.empty(plan.shape)
    found = fused.kernel()
    assert found is not None
    function = found.gradient[torch.float32]

    def call(threads: int, grad: torch.Tensor) -> None:
        function(
            x.data_ptr(), *plan.arguments, value.data_ptr(), plan.group, None, None,
            grad.data_ptr(), threads,
        )  # fmt: skip

    return call


def _row(x: torch.Tensor, name: str, threads: int, rounds: int) -> str:
    """One line of the parts table: the pass, the kernel and the step for one loss."""
    kept = torch.empty_like(x)
    loss = TVLoss(**b.LOSSES[name][1])
    call, step = kernel_call(x, loss), step_of(loss, x)
    wall = best_over_rounds(
        {
            "pass": lambda: torch.neg(x, out=kept),
            "fresh pass": lambda: torch.neg(x),
            "kept": lambda: call(threads, kept),
            "fresh": lambda: call(threads, torch.empty_like(x)),
            "step": step,
        },
        rounds,
        time.perf_counter,
    )
    cpu = best_over_rounds({0: lambda: call(1, kept)}, max(rounds // 3, 3), time.thread_time)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        step()
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5
    ms = {key: value * 1e3 for key, value in wall.items()}
    return (
        f"| {tuple(x.shape)} | {name.split(' (')[0]} | {ms['pass']:.3f} | {ms['fresh pass']:.3f} "
        f"| {cpu[0] * 1e3:.3f} | {ms['kept']:.3f} | {ms['fresh']:.3f} | {ms['step']:.3f} "
        f"| {ms['step'] / ms['pass']:.1f} | {faults:.0f} | {load()} |"
    )


def parts(shapes: tuple[tuple[int, ...], ...], rounds: int) -> None:
    threads = torch.get_num_threads()
    print(f"parts: {threads} threads, float32, ms (best of {rounds} rounds); load {load()}")
    tiny = torch.rand(2, 3, 8, 8)
    for name in PICK:
        tiny_step = step_of(TVLoss(**b.LOSSES[name][1]), tiny)
        per = best_over_rounds(
            {0: lambda s=tiny_step: [s() for _ in range(100)]}, 20, time.perf_counter
        )
        print(
            f"  Python + autograd per step, {name.split(' (')[0]} on (2, 3, 8, 8): "
            f"{per[0] * 1e4:.1f} us"
        )
    print(
        "| shape | loss | pass | pass, fresh output | kernel 1 thread (CPU) | kernel, kept "
        "buffer | kernel, fresh buffer | step | step passes | faults per step | load |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for shape in shapes:
        x = torch.rand(shape)
        for name in PICK:
            print(_row(x, name, threads, rounds), flush=True)


def paths(shape: tuple[int, ...], rounds: int) -> None:
    torch.set_num_threads(1)
    x = torch.rand(shape)
    steps: dict[tuple[str, str], Callable[[], None]] = {}
    for name, options in PATHS.items():
        steps[name, "fused"] = step_of(TVLoss(**options), x)
        steps[name, "torch"] = step_of(TVLoss(backend="torch", **options), x)
    best = best_over_rounds(steps, rounds, time.thread_time)
    n = x.numel()
    print(f"paths: {shape}, 1 thread, CPU time per forward + backward, ns per value; load {load()}")
    print("| option | fused | autograd | autograd / fused | fused / fused beta 1 of its kind |")
    print("| --- | ---: | ---: | ---: | ---: |")
    reference: dict[str, float] = {}
    for name in PATHS:
        kind = name.split()[0]
        ours, theirs = best[name, "fused"], best[name, "torch"]
        reference.setdefault(kind, ours)
        print(
            f"| {name} | {ours / n * 1e9:.2f} | {theirs / n * 1e9:.2f} | {theirs / ours:.1f}x "
            f"| {ours / reference[kind]:.1f}x |"
        )
    print(f"load {load()}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", nargs="?", choices=("parts", "paths"), default="parts")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--smoke", action="store_true", help="tiny shapes")
    args = parser.parse_args(argv)
    if args.table == "parts":
        parts(b.SMOKE_SHAPES if args.smoke else b.SHAPES, args.rounds)
    else:
        paths((2, 3, 16, 16) if args.smoke else (16, 3, 256, 256), max(args.rounds // 6, 2))


if __name__ == "__main__":
    main()
