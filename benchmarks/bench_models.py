"""Why converged ROF loses to scikit-image's early-stopped Chambolle on a few grey rows, and
which model closes it: other discretisations of isotropic TV, and Huber smoothing.

bench_quality.py found converged ROF with forward differences (``tv="isotropic"``, the default
until the symmetric kind replaced it) below scikit-image's ``denoise_tv_chambolle`` at its
oracle weight on four grey rows (moon sigma 10, grass sigma 10 / 25 / 50, 128x128 crops). This
script measures, on those rows and four controls, each candidate model at its own oracle
weight, with bench_quality's protocol (same crops, noise, PSNR and oracle search):

- ``forward``: ``tv="isotropic"``, solved by tvdenoise (tol 1e-5);
- ``symmetric``: ``tv="symmetric"``, the default now, solved by tvdenoise (tol 1e-5): the
  mean of the forward and the backward stencils' isotropic TV;
- ``avg4``: isotropic TV averaged over the four one-sided stencils (forward/backward in y
  times forward/backward in x), ``1/4 sum_k |D_k u|``: less biased towards one diagonal;
- ``huber c``: forward differences with the Huber function of threshold ``c * weight`` in
  place of ``|.|`` (quadratic below it, so gentle gradients are not flattened into steps);
- ``avg4 + huber c`` and ``symmetric + huber c``: both; the threshold applies to
  ``(K u)_k = D_k u / S`` (S stencils), so it is S times larger on the differences themselves
  than in ``huber c``.

The candidates are solved here by Chambolle-Pock on ``min_u 1/2 ||u - f||^2 + weight *
sum h(|(K u)_k|)``, ``K`` the stencils stacked and divided by their count, stopped on a
relative primal-dual gap of 1e-5 (dual of the Huber term: ``c / 2 |p|^2`` on ``|p| <= weight``).

A second table puts the forward and the symmetric model against scikit-image on the four rows
at crop sizes 128, 256 and 512 (the whole image).

    python benchmarks/bench_models.py            # about 10 minutes; writes RESULTS.md
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
from bench_quality import COLOUR, GREY, RESULTS, load, noise, oracle, skimage_chambolle
from common import write_section

import tvdenoise

SECTION = "bench_models.py"
SIZES = (128, 256, 512)
ROWS = (
    ("moon", 10),
    ("grass", 10),
    ("grass", 25),
    ("grass", 50),
    ("camera", 10),
    ("coins", 10),
    ("camera", 25),
    ("brick", 25),
)
STENCILS = {
    "forward": (("f", "f"),),
    "symmetric": (("f", "f"), ("b", "b")),
    "avg4": (("f", "f"), ("f", "b"), ("b", "f"), ("b", "b")),
}
MODELS = (
    ("symmetric + huber 0.025", "symmetric", 0.025),
    ("symmetric + huber 0.05", "symmetric", 0.05),
    ("avg4", "avg4", 0.0),
    ("huber 0.05", "forward", 0.05),
    ("huber 0.1", "forward", 0.1),
    ("huber 0.15", "forward", 0.15),
    ("avg4 + huber 0.05", "avg4", 0.05),
    ("avg4 + huber 0.1", "avg4", 0.1),
)


def stencil_operator(u: torch.Tensor, stencils: tuple[tuple[str, str], ...]) -> torch.Tensor:
    """``K u``: (S, 2, H, W), the one-sided differences of each stencil (zero where a
    difference would leave the image), divided by the number of stencils S."""
    forward_y, forward_x = torch.zeros_like(u), torch.zeros_like(u)
    forward_y[:-1] = u[1:] - u[:-1]
    forward_x[:, :-1] = u[:, 1:] - u[:, :-1]
    backward_y, backward_x = torch.zeros_like(u), torch.zeros_like(u)
    backward_y[1:] = u[1:] - u[:-1]
    backward_x[:, 1:] = u[:, 1:] - u[:, :-1]
    y = {"f": forward_y, "b": backward_y}
    x = {"f": forward_x, "b": backward_x}
    return torch.stack([torch.stack([y[sy], x[sx]]) for sy, sx in stencils]) / len(stencils)


def solve_model(
    f: np.ndarray, weight: float, stencils: tuple[tuple[str, str], ...], c: float
) -> np.ndarray:
    """Accelerated Chambolle-Pock for the model above, to a relative gap of 1e-5."""
    target = torch.from_numpy(f)

    def apply(u: torch.Tensor) -> torch.Tensor:
        return stencil_operator(u, stencils)

    def adjoint(p: torch.Tensor) -> torch.Tensor:
        _, pullback = torch.func.vjp(apply, target)
        return pullback(p)[0]

    def huber(m: torch.Tensor) -> torch.Tensor:
        alpha = c * weight
        if alpha == 0:
            return m
        return torch.where(m <= alpha, m * m / (2 * alpha), m - alpha / 2)

    u = target.clone()
    u_bar = u.clone()
    p = torch.zeros_like(apply(u))
    tau = 0.25
    sigma = 1.0 / (8.0 / len(stencils) * tau)  # ||K||^2 <= 8 / S
    for iteration in range(1, 20001):
        p = (p + sigma * apply(u_bar)) / (1.0 + sigma * c)
        p = p / (p.pow(2).sum(1, keepdim=True).sqrt() / weight).clamp(min=1.0)
        kt_p = adjoint(p)
        previous = u
        u = (u - tau * kt_p + tau * target) / (1.0 + tau)
        theta = 1.0 / math.sqrt(1.0 + tau)  # gamma = 0.5
        tau, sigma = tau * theta, sigma / theta
        u_bar = u + theta * (u - previous)
        if iteration % 50 == 0:
            primal = 0.5 * float((u - target).pow(2).sum()) + weight * float(
                huber(apply(u).pow(2).sum(1).sqrt()).sum()
            )
            kt_p = adjoint(p)
            dual = (
                float((kt_p * target).sum())
                - 0.5 * float(kt_p.pow(2).sum())
                - 0.5 * c * float(p.pow(2).sum())
            )
            if primal - dual <= 1e-5 * primal:
                break
    return u.numpy()


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--quick", action="store_true", help="one small row, no file written")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = ROWS[:1] if args.quick else ROWS
    crop = 32 if args.quick else args.crop
    models = MODELS[:2] if args.quick else MODELS
    header = ["image", "sigma", "scikit-image chambolle", "forward", "symmetric (default)"]
    lines = [
        f"## Default-model candidates ({SECTION}, {time.strftime('%Y-%m-%d')})",
        "",
        f"{crop}x{crop} central crops, bench_quality.py's protocol; PSNR at each model's own "
        "oracle weight; differences from scikit-image's `denoise_tv_chambolle` at its oracle.",
        "",
        "| " + " | ".join(header + [name for name, _, _ in models]) + " |",
        "| " + " | ".join("---" for _ in range(len(header) + len(models))) + " |",
    ]
    for name, sigma in rows:
        clean = load(name, crop)
        f = clean + sigma / 255 * noise((GREY + COLOUR).index(name), clean.shape)
        reference = oracle(clean, f, skimage_chambolle, 0.004 * sigma)
        cells = [name, str(sigma), f"{reference.psnr:.3f} @ {reference.weight:.4f}"]
        for tv in ("isotropic", "symmetric"):
            ours = oracle(
                clean,
                f,
                lambda g, w, tv=tv: tvdenoise.denoise(g, weight=w, tv=tv, tol=1e-5),
                0.004 * sigma,
            )
            cells.append(f"{ours.psnr - reference.psnr:+.3f}")
        for _, stencils, c in models:
            score = oracle(
                clean,
                f,
                lambda g, w, s=STENCILS[stencils], c=c: solve_model(g, w, s, c),
                0.004 * sigma,
            )
            cells.append(f"{score.psnr - reference.psnr:+.3f}")
        lines.append("| " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    if not args.quick:
        lines += ["", *size_table(SIZES)]
        write_section(SECTION, lines, args.output)
    return lines


def size_table(sizes: tuple[int, ...]) -> list[str]:
    """The forward and the symmetric (default) model against scikit-image (each at its oracle
    weight) on the four rows forward loses at 128, at several crop sizes: how much the verdict
    depends on the crop."""
    lines = [
        "Forward / symmetric (default) minus scikit-image chambolle, each at its oracle weight "
        "(dB), by central crop size (512 is the whole image):",
        "",
        "| image | sigma | " + " | ".join(f"{size}x{size}" for size in sizes) + " |",
        "| --- | --- | " + " | ".join("---" for _ in sizes) + " |",
    ]
    for name, sigma in ROWS[:4]:
        cells = []
        for size in sizes:
            clean = load(name, size)
            f = clean + sigma / 255 * noise((GREY + COLOUR).index(name), clean.shape)
            reference = oracle(clean, f, skimage_chambolle, 0.004 * sigma)
            scores = [
                oracle(
                    clean,
                    f,
                    lambda g, w, tv=tv: tvdenoise.denoise(g, weight=w, tv=tv),
                    0.004 * sigma,
                )
                for tv in ("isotropic", "symmetric")
            ]
            cells.append(
                " / ".join(f"{s.psnr - reference.psnr:+.3f}" for s in scores)
                + f" (weights {scores[0].weight:.4f} / {scores[1].weight:.4f} / "
                f"{reference.weight:.4f})"
            )
        lines.append(f"| {name} | {sigma} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    return lines


if __name__ == "__main__":
    main()
