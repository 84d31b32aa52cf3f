"""Half precision: what float16 / bfloat16 working precision would cost in accuracy.

TV works on differences of neighbouring pixels, often a few 1e-3 on the [0, 1] scale, while
float16 resolves about 1e-3 near 1 (10-bit mantissa) and bfloat16 about 8e-3 (7 bits). This
runs the Chambolle-Pock solver (plain torch, any dtype) in float16, bfloat16 and float32 on
the PROTOCOL.md noisy images (256x256 central crops, sigma 25, weight 0.1) and compares
each with a float64 solution certified by its gap: max abs difference and PSNR against the
clean image. The library refuses half working precision (``dtype=`` must be float32 or
float64) and computes half-precision inputs in float32, returning their dtype; this script is
the measurement behind that decision.

Run ``python benchmarks/bench_precision.py`` (about a minute); ``--write`` replaces this
script's section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch
from common import central_crop, noisy_image, write_section

SECTION = "bench_precision.py"
IMAGES = ["camera", "moon", "astronaut", "coffee"]


def noisy(name: str, size: int = 256, sigma: float = 25.0) -> tuple[np.ndarray, np.ndarray]:
    """The clean and the noisy central crop of a PROTOCOL.md image."""
    from skimage import data, img_as_float

    clean = img_as_float(getattr(data, name)())
    return central_crop(clean, size), central_crop(noisy_image(name, sigma), size)


def solve_in(f: np.ndarray, dtype: torch.dtype, iterations: int) -> np.ndarray:
    """Chambolle-Pock on the plain torch path in ``dtype`` (bypassing the library's check)."""
    from tvdenoise.fidelity import get_fidelity
    from tvdenoise.solvers import Problem, solve

    tensor = torch.from_numpy(f if f.ndim == 3 else f[..., None]).permute(2, 0, 1)[None]
    problem = Problem(
        tensor.to(dtype).contiguous(), 0.1, 1.0, "isotropic", "vectorial", get_fidelity("l2")
    )
    u, _ = solve(problem, "chambolle_pock", max_iter=iterations, tol=0.0, check_every=iterations)
    return u[0].permute(1, 2, 0).double().numpy().reshape(f.shape)


def main() -> None:
    from skimage.metrics import peak_signal_noise_ratio

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = [
        "| image | dtype | max abs diff vs float64 | PSNR (dB) | PSNR - float64 PSNR |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name in IMAGES:
        clean, f = noisy(name)
        reference = solve_in(f, torch.float64, args.iterations)
        base = peak_signal_noise_ratio(clean, reference, data_range=1.0)
        for dtype in (torch.float32, torch.bfloat16, torch.float16):
            u = solve_in(f, dtype, args.iterations)
            finite = bool(np.isfinite(u).all())
            diff = float(np.abs(u - reference).max()) if finite else float("nan")
            psnr = peak_signal_noise_ratio(clean, u, data_range=1.0) if finite else float("nan")
            rows.append(
                f"| {name} | {str(dtype).removeprefix('torch.')} | {diff:.2e} | "
                f"{psnr:.2f} | {psnr - base:+.2f} |"
            )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    text = "\n".join(
        [
            "## Half precision (`benchmarks/bench_precision.py`)",
            "",
            f"Chambolle-Pock, {args.iterations} iterations, weight 0.1, sigma 25, 256x256 crops, "
            f"torch {torch.__version__}; load average {load}.",
            "",
            *rows,
            "",
        ]
    )
    print(text)
    if args.write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
