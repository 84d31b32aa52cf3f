"""Half precision: what float16 / bfloat16 working precision would cost in accuracy.

TV works on differences of neighbouring pixels, often a few 1e-3 on the [0, 1] scale, while
float16 resolves about 1e-3 near 1 (10-bit mantissa) and bfloat16 about 8e-3 (7 bits). This
runs the Chambolle-Pock solver (plain torch, any dtype) in float64, float32, bfloat16 and
float16 on the PROTOCOL.md noisy images (256x256 central crops, sigma 25, weight 0.1,
forward isotropic TV) for several iteration counts, and compares each result

- with the float64 run of the same iteration count (the cost of the precision alone: it
  grows with the iterations when the rounding errors accumulate), and
- with a float64 solution certified by its relative primal-dual gap (``--reference-gap``,
  1e-8 as in PROTOCOL.md, "Energy and gap"): the error a user sees. The energy is
  1-strongly convex, so ``||u_ref - u*||_2 <= sqrt(2 gap E(u_ref))``; the script prints that
  bound.

and gives the PSNR against the clean image. The library refuses half working precision
(``dtype=`` must be float32 or float64) and computes half-precision inputs in float32,
returning their dtype; this script is the measurement behind that decision.

Run ``python benchmarks/bench_precision.py`` (several minutes on two threads); ``--write``
replaces this script's section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
from typing import NamedTuple

import numpy as np
import torch
from common import central_crop, noisy_image, write_section

SECTION = "bench_precision.py"
IMAGES = ["camera", "moon", "astronaut", "coffee"]
ITERATIONS = (100, 300, 1000)
DTYPES = (torch.float64, torch.float32, torch.bfloat16, torch.float16)
WEIGHT = 0.1
REFERENCE_GAP = 1e-8
REFERENCE_MAX_ITER = 100_000


def noisy(name: str, size: int = 256, sigma: float = 25.0) -> tuple[np.ndarray, np.ndarray]:
    """The clean and the noisy central crop of a PROTOCOL.md image."""
    from skimage import data, img_as_float

    clean = img_as_float(getattr(data, name)())
    return central_crop(clean, size), central_crop(noisy_image(name, sigma), size)


def _problem(f: np.ndarray, dtype: torch.dtype):  # type: ignore[no-untyped-def]
    from tvdenoise.fidelity import get_fidelity
    from tvdenoise.solvers import Problem

    tensor = torch.from_numpy(f if f.ndim == 3 else f[..., None]).permute(2, 0, 1)[None]
    return Problem(
        tensor.to(dtype).contiguous(), WEIGHT, 1.0, "isotropic", "vectorial", get_fidelity("l2")
    )


def _image(u: torch.Tensor, f: np.ndarray) -> np.ndarray:
    return u[0].permute(1, 2, 0).double().numpy().reshape(f.shape)


def solve_in(f: np.ndarray, dtype: torch.dtype, iterations: int) -> np.ndarray:
    """Chambolle-Pock on the plain torch path in ``dtype`` (bypassing the library's check),
    exactly ``iterations`` iterations."""
    from tvdenoise.solvers import solve

    problem = _problem(f, dtype)
    u, _ = solve(problem, "chambolle_pock", max_iter=iterations, tol=0.0, check_every=iterations)
    return _image(u, f)


class Reference(NamedTuple):
    """A float64 solution and its certificate."""

    u: np.ndarray
    gap: float
    iterations: int
    distance_bound: float  # certified bound on ||u - u*||_2


def certified_reference(f: np.ndarray, gap: float, max_iter: int = REFERENCE_MAX_ITER) -> Reference:
    """float64 solve (the rof solver: fused kernel where available) to a relative primal-dual
    gap of ``gap``; raises if it is not reached, so no figure rests on an uncertified one."""
    from tvdenoise.solvers import solve

    problem = _problem(f, torch.float64)
    u, record = solve(problem, "rof", max_iter=max_iter, tol=gap)
    if not (record.converged and record.gap is not None and record.gap <= gap):
        raise RuntimeError(
            f"float64 reference not certified: gap {record.gap} after {record.iterations} "
            f"iterations (wanted <= {gap:g})"
        )
    bound = math.sqrt(2.0 * record.gap * record.energy)
    return Reference(_image(u, f), float(record.gap), record.iterations, bound)


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def main(argv: list[str] | None = None) -> list[str]:
    from skimage.metrics import peak_signal_noise_ratio

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, nargs="+", default=list(ITERATIONS))
    parser.add_argument("--images", nargs="+", default=IMAGES)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--reference-gap", type=float, default=REFERENCE_GAP)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    counts = sorted(args.iterations)
    torch.set_num_threads(2)
    rows = [
        "| image | dtype | iterations | max abs diff vs float64, same iterations | "
        "max abs diff vs certified | PSNR (dB) | PSNR - certified PSNR |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    certificates = []
    # same_count[dtype][k]: max abs diff to the float64 run of the same count, per image.
    same_count: dict[str, dict[int, list[float]]] = {
        _name(d): {k: [] for k in counts} for d in DTYPES[1:]
    }
    for name in args.images:
        clean, f = noisy(name, args.size)
        reference = certified_reference(f, args.reference_gap)
        certificates.append(
            f"{name}: gap {reference.gap:.1e} at {reference.iterations} iterations, "
            f"||u_ref - u*||_2 <= {reference.distance_bound:.1e}"
        )
        base = peak_signal_noise_ratio(clean, reference.u, data_range=1.0)
        for k in counts:
            float64 = solve_in(f, torch.float64, k)
            for dtype in DTYPES:
                u = float64 if dtype == torch.float64 else solve_in(f, dtype, k)
                finite = bool(np.isfinite(u).all())
                to_certified = float(np.abs(u - reference.u).max()) if finite else math.nan
                to_float64 = float(np.abs(u - float64).max()) if finite else math.nan
                psnr = peak_signal_noise_ratio(clean, u, data_range=1.0) if finite else math.nan
                if dtype != torch.float64:
                    same_count[_name(dtype)][k].append(to_float64)
                rows.append(
                    f"| {name} | {_name(dtype)} | {k} | {to_float64:.2e} | {to_certified:.2e} | "
                    f"{psnr:.2f} | {psnr - base:+.2f} |"
                )
    trend = []
    for dtype, by_count in same_count.items():
        largest = [float(np.max(by_count[k])) for k in counts]
        grows = all(a < b for a, b in itertools.pairwise(largest))
        trend.append(
            f"- {dtype}: "
            + ", ".join(f"{value:.2e} at {k}" for value, k in zip(largest, counts, strict=True))
            + (" (grows)" if grows else " (does not grow at every step)")
        )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        "## Half precision (`benchmarks/bench_precision.py`)",
        "",
        f"Chambolle-Pock, {', '.join(map(str, counts))} iterations, weight {WEIGHT}, sigma 25, "
        f"forward isotropic TV, {args.size}x{args.size} crops, torch {torch.__version__}; "
        f"load average {load}. Certified float64 references (rof solver, relative "
        f"primal-dual gap <= {args.reference_gap:g}): " + "; ".join(certificates) + ". "
        "A max abs diff vs certified below a reference's bound is within that reference's "
        "own uncertainty (a smaller --reference-gap tightens it).",
        "",
        *rows,
        "",
        "Largest max abs diff to the float64 run of the same iteration count, over the images:",
        "",
        *trend,
        "",
    ]
    print("\n".join(lines))
    if args.write:
        write_section(SECTION, lines)
    return lines


if __name__ == "__main__":
    main()
