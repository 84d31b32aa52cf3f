"""Quality benchmark: PSNR and SSIM of tvdenoise against scikit-image's TV denoisers and BM3D.

Protocol (PROTOCOL.md, written to benchmarks/RESULTS.md with the figures):

- Images: scikit-image's samples, ``img_as_float`` (float64 in [0, 1]), whole (the default,
  ``--crop 0``) or a centred crop of ``--crop`` pixels a side.
  Grey: camera, moon, coins, brick, grass; colour: astronaut, coffee, chelsea,
  immunohistochemistry, rocket.
- Noise: ``f = clean + (sigma / 255) * z`` with ``z = default_rng(1234 + i).standard_normal``
  of the crop's shape, ``i`` the image's position in the list above; the same ``z`` for every
  sigma; no clipping.
- Metrics: scikit-image PSNR and SSIM, ``data_range=1`` (``channel_axis=-1`` for colour), on
  the output as returned.
- Oracle weight: best PSNR on the geometric grid ``w0 * 2^(k/4)`` (a hill climb from a first
  guess ``w0``), then refined on ``2^(j/16)`` around the best.

Run ``python benchmarks/bench_quality.py --betas 0.8`` (about 25 minutes on 2 quiet cores,
whole images); ``--quick`` is a tiny smoke run (one small image, one sigma, no BM3D).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from common import write_section

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tvdenoise

GREY = ("camera", "moon", "coins", "brick", "grass")
COLOUR = ("astronaut", "coffee", "chelsea", "immunohistochemistry", "rocket")
SIGMAS = (10, 25, 50)
RESULTS = Path(__file__).with_name("RESULTS.md")
SECTION = "bench_quality.py"

Denoiser = Callable[[np.ndarray, float], np.ndarray]


@dataclass
class Score:
    weight: float | None
    psnr: float
    ssim: float
    iterations: int | None = None


def load(name: str, crop: int) -> np.ndarray:
    """A centred ``crop`` x ``crop`` float64 crop of scikit-image's sample ``name`` (the whole
    image for ``crop`` 0)."""
    from skimage import data, img_as_float

    image = img_as_float(getattr(data, name)())
    if crop == 0:
        return np.ascontiguousarray(image)
    h, w = image.shape[:2]
    top, left = max((h - crop) // 2, 0), max((w - crop) // 2, 0)
    return np.ascontiguousarray(image[top : top + crop, left : left + crop])


def noise(index: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(1234 + index).standard_normal(shape)


def score(clean: np.ndarray, output: np.ndarray, weight: float | None) -> Score:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    channel_axis = -1 if clean.ndim == 3 else None
    return Score(
        weight,
        float(peak_signal_noise_ratio(clean, output, data_range=1.0)),
        float(structural_similarity(clean, output, data_range=1.0, channel_axis=channel_axis)),
    )


def oracle(clean: np.ndarray, noisy: np.ndarray, method: Denoiser, first_guess: float) -> Score:
    """Best PSNR over ``first_guess * 2^(k/4)``, refined on ``2^(j/16)`` around the best."""
    cache: dict[int, Score] = {}

    def at(j: int) -> float:  # j counts sixteenths of an octave
        if j not in cache:
            weight = first_guess * 2.0 ** (j / 16)
            cache[j] = score(clean, method(noisy, weight), weight)
        return cache[j].psnr

    def climb(start: int, step: int) -> int:
        best = start
        for direction in (1, -1):
            while at(best + direction * step) > at(best):
                best += direction * step
        return best

    best = climb(climb(0, 4), 1)
    return cache[best]


def tvdenoise_method(**options: object) -> Denoiser:
    def run(noisy: np.ndarray, weight: float) -> np.ndarray:
        return tvdenoise.denoise(noisy, weight=weight, **options)  # type: ignore[arg-type]

    return run


def skimage_chambolle(noisy: np.ndarray, weight: float) -> np.ndarray:
    from skimage.restoration import denoise_tv_chambolle

    return denoise_tv_chambolle(noisy, weight, channel_axis=-1 if noisy.ndim == 3 else None)


def skimage_bregman(noisy: np.ndarray, weight: float) -> np.ndarray:
    from skimage.restoration import denoise_tv_bregman

    return denoise_tv_bregman(noisy, weight, channel_axis=-1 if noisy.ndim == 3 else None)


def forward_energy(u: np.ndarray, f: np.ndarray, weight: float) -> float:
    """1/2 ||u - f||^2 + weight * forward-difference isotropic TV, channelwise: the energy
    scikit-image's ``denoise_tv_chambolle`` minimises (PROTOCOL.md), float64 numpy."""
    u = u.astype(np.float64).reshape(*u.shape[:2], -1)
    f = f.astype(np.float64).reshape(u.shape)
    dy = np.zeros_like(u)
    dx = np.zeros_like(u)
    dy[:-1] = u[1:] - u[:-1]
    dx[:, :-1] = u[:, 1:] - u[:, :-1]
    return 0.5 * float(((u - f) ** 2).sum()) + weight * float(np.sqrt(dy**2 + dx**2).sum())


#: The relative energy gap the converged scikit-image column reaches.
CONVERGED_GAP = 1e-4


def skimage_converged(clean: np.ndarray, noisy: np.ndarray, guess: float) -> Score:
    """scikit-image's ``denoise_tv_chambolle`` run to convergence at its oracle weight.

    Its energy is forward isotropic channelwise TV, which tvdenoise solves exactly with
    ``tv="isotropic", color="channelwise"``: the oracle weight is found with that solve
    (relative gap 1e-4), then scikit-image itself runs at that weight with ``eps=0`` and
    ``max_num_iter`` doubled from 100 until its energy is within ``CONVERGED_GAP`` of the
    minimum (from a float64 solve to relative gap 1e-7). The score's ``iterations`` is that
    count.
    """
    from skimage.restoration import denoise_tv_chambolle

    same_energy = tvdenoise_method(tv="isotropic", color="channelwise", tol=CONVERGED_GAP)
    weight = oracle(clean, noisy, same_energy, guess).weight
    assert weight is not None
    reference = tvdenoise.denoise(
        torch.from_numpy(np.ascontiguousarray(noisy)),
        weight=weight,
        tv="isotropic",
        color="channelwise",
        tol=1e-7,
        max_iter=200_000,
    )
    e_star = forward_energy(reference.numpy(), noisy, weight)
    channel_axis = -1 if noisy.ndim == 3 else None
    count = 100
    while True:
        output = denoise_tv_chambolle(
            noisy, weight, eps=0, max_num_iter=count, channel_axis=channel_axis
        )
        if (forward_energy(output, noisy, weight) - e_star) / e_star <= CONVERGED_GAP:
            break
        count *= 2
    scored = score(clean, output, weight)
    scored.iterations = count
    return scored


def bm3d_method(noisy: np.ndarray, sigma: float) -> np.ndarray:
    import bm3d

    if noisy.ndim == 3:
        return np.asarray(bm3d.bm3d_rgb(noisy, sigma))
    return np.asarray(bm3d.bm3d(noisy, sigma))


def run(
    names: list[str],
    sigmas: list[int],
    crop: int,
    betas: list[float],
    use_bm3d: bool,
    converged: bool = True,
) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    order = list(GREY + COLOUR)
    for name in names:
        clean = load(name, crop)
        z = noise(order.index(name), clean.shape)
        colour = clean.ndim == 3
        for sigma in sigmas:
            s = sigma / 255
            noisy = clean + s * z
            start = time.perf_counter()
            row: dict[str, object] = {"image": name, "sigma": sigma, "colour": colour}
            row["noisy"] = score(clean, noisy, None)
            guess = 0.004 * sigma  # about the oracle weight of TV for sigma in [0, 255]
            row["tvd"] = oracle(clean, noisy, tvdenoise_method(), guess)
            row["tvd_forward"] = oracle(clean, noisy, tvdenoise_method(tv="isotropic"), guess)
            if colour:
                row["tvd_channelwise"] = oracle(
                    clean, noisy, tvdenoise_method(color="channelwise"), guess
                )
            for beta in betas:
                row[f"tvd_beta{beta:g}"] = oracle(clean, noisy, tvdenoise_method(beta=beta), guess)
            row["sk_default"] = score(clean, skimage_chambolle(noisy, 0.1), 0.1)
            row["sk_oracle"] = oracle(clean, noisy, skimage_chambolle, guess)
            if converged:
                row["sk_converged"] = skimage_converged(clean, noisy, guess)
            row["bregman"] = oracle(clean, noisy, skimage_bregman, 1.0 / (2.0 * guess))
            if use_bm3d:
                row["bm3d"] = score(clean, bm3d_method(noisy, s), s)
            row["seconds"] = time.perf_counter() - start
            rows.append(row)
            print(format_row(row, betas, use_bm3d), flush=True)
    return rows


def columns(betas: list[float], use_bm3d: bool) -> list[tuple[str, str]]:
    cols = [
        ("noisy", "noisy"),
        ("tvd", "tvdenoise default (symmetric, beta 1)"),
        ("tvd_forward", "tvdenoise tv=isotropic (forward)"),
        ("tvd_channelwise", "tvdenoise channelwise"),
    ]
    cols += [(f"tvd_beta{b:g}", f"tvdenoise beta {b:g}") for b in betas]
    cols += [
        ("sk_default", "skimage chambolle w=0.1"),
        ("sk_oracle", "skimage chambolle oracle"),
        ("sk_converged", "skimage chambolle converged (eps 0, gap 1e-4) oracle @iterations"),
        ("bregman", "skimage bregman oracle"),
    ]
    if use_bm3d:
        cols.append(("bm3d", "BM3D (true sigma)"))
    return cols


def _cell(value: object) -> str:
    if not isinstance(value, Score):
        return "-"
    weight = "" if value.weight is None else f" @{value.weight:.4g}"
    iterations = "" if value.iterations is None else f" @{value.iterations} it"
    return f"{value.psnr:.2f} / {value.ssim:.3f}{weight}{iterations}"


def format_row(row: dict[str, object], betas: list[float], use_bm3d: bool) -> str:
    cells = [str(row["image"]), str(row["sigma"])]
    cells += [_cell(row.get(key)) for key, _ in columns(betas, use_bm3d)]
    sk = row["sk_oracle"]
    assert isinstance(sk, Score)
    for key in ("tvd", "tvd_forward"):
        ours = row.get(key)
        cells.append(f"{ours.psnr - sk.psnr:+.3f}" if isinstance(ours, Score) else "-")
    converged, ours = row.get("sk_converged"), row.get("tvd")
    if isinstance(converged, Score) and isinstance(ours, Score):
        # The default's margin over skimage's early stop = the model's share (default minus
        # converged skimage) + the early stop's share (converged minus early-stopped).
        cells.append(f"{ours.psnr - converged.psnr:+.3f}")
        cells.append(f"{converged.psnr - sk.psnr:+.3f}")
    else:
        cells += ["-", "-"]
    return "| " + " | ".join(cells) + " |"


def markdown(
    rows: list[dict[str, object]], betas: list[float], use_bm3d: bool, crop: int, seconds: float
) -> str:
    header = ["image", "sigma"] + [label for _, label in columns(betas, use_bm3d)]
    header += ["default - skimage oracle (dB)", "forward - skimage oracle (dB)"]
    header += ["model: default - skimage converged (dB)", "early stop: converged - oracle (dB)"]
    images = "whole images" if crop == 0 else f"centred crop {crop}x{crop}"
    lines = [
        "## Quality: PSNR (dB) / SSIM @ weight",
        "",
        f"Generated by `python benchmarks/bench_quality.py` in {seconds / 60:.1f} min "
        f"(torch {torch.__version__}, 2 threads).",
        "",
        f"Protocol: scikit-image samples, `img_as_float`, {images}; f = clean + sigma/255 * z, "
        "z = numpy `default_rng(1234 + i).standard_normal(image shape)`, i the image's index "
        "in (camera, moon, coins, brick, grass, astronaut, coffee, chelsea, "
        "immunohistochemistry, rocket); same z for every sigma; no clipping. PSNR and SSIM "
        "from scikit-image with data_range = 1 (channel_axis = -1 for "
        "colour) on the outputs as returned. Oracle weight: best PSNR on the grid "
        "w0 * 2^(k/4) (hill climb from w0 = 0.004 * sigma for the TV weights, 1 / (2 w0) for "
        "bregman), refined on 2^(j/16) around the best. tvdenoise runs `denoise(f, weight=w)` "
        "with its defaults (beta 1, tv symmetric, vectorial colour, tol "
        f"{tvdenoise.denoising.DEFAULT_TOL:g}, float32); the forward column adds "
        "`tv='isotropic'` (forward differences only: the model scikit-image's chambolle "
        "minimises), channelwise adds `color='channelwise'`, beta adds `beta=...`; "
        "skimage chambolle with its defaults (eps 2e-4, max_num_iter 200), channel_axis for "
        "colour; skimage converged: its oracle weight found on the same energy solved "
        "exactly by tvdenoise (`tv='isotropic', color='channelwise'`, gap 1e-4), then "
        "`denoise_tv_chambolle(eps=0)` at that weight with max_num_iter doubled from 100 "
        "until its energy is within 1e-4 of the minimum (float64, gap 1e-7); the last two "
        "columns split the default's margin into the model's share and the share of "
        "scikit-image's early stop. BM3D (`bm3d` package) is given the true sigma.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + " --- |" * len(header),
    ]
    lines += [format_row(row, betas, use_bm3d) for row in rows]
    lines += ["", summary(rows, betas)]
    return "\n".join(lines) + "\n"


def summary(rows: list[dict[str, object]], betas: list[float]) -> str:
    def mean(key: str, colour: bool | None = None) -> str:
        values = [
            r[key].psnr  # type: ignore[union-attr]
            for r in rows
            if isinstance(r.get(key), Score) and (colour is None or r["colour"] == colour)
        ]
        return f"{sum(values) / len(values):.3f}" if values else "-"

    def margins(key: str) -> list[float]:
        return [r[key].psnr - r["sk_oracle"].psnr for r in rows]  # type: ignore[union-attr]

    def below(key: str) -> str:
        losing = [
            f"{r['image']} sigma {r['sigma']} ({m:+.3f})"
            for r, m in zip(rows, margins(key), strict=True)
            if m < 0
        ]
        return ", ".join(losing) if losing else "none"

    keys = ["tvd", "tvd_forward", "tvd_channelwise", *(f"tvd_beta{b:g}" for b in betas)]
    keys += ["sk_oracle", "sk_converged", "bregman", "bm3d"]
    parts = [f"{k}: grey {mean(k, False)}, colour {mean(k, True)}" for k in keys]
    return (
        "Mean PSNR (dB): "
        + "; ".join(parts)
        + f". Smallest margin over skimage chambolle at its oracle weight: default "
        f"{min(margins('tvd')):+.3f} dB, forward {min(margins('tvd_forward')):+.3f} dB. "
        f"Rows where the default is below it: {below('tvd')}; where forward is: "
        f"{below('tvd_forward')}."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", nargs="*", default=list(GREY + COLOUR))
    parser.add_argument("--sigmas", nargs="*", type=int, default=list(SIGMAS))
    parser.add_argument("--crop", type=int, default=0, help="crop side; 0: whole images")
    parser.add_argument("--betas", nargs="*", type=float, default=[1.1])
    parser.add_argument("--no-bm3d", action="store_true")
    parser.add_argument(
        "--no-converged", action="store_true", help="skip the converged scikit-image column"
    )
    parser.add_argument("--quick", action="store_true", help="tiny smoke run, no file written")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    if args.quick:
        args.images, args.sigmas, args.crop, args.no_bm3d = ["camera"], [25], 32, True
        args.betas = []
    start = time.perf_counter()
    rows = run(
        args.images, args.sigmas, args.crop, args.betas, not args.no_bm3d, not args.no_converged
    )
    text = markdown(rows, args.betas, not args.no_bm3d, args.crop, time.perf_counter() - start)
    if not args.quick:
        write_section(SECTION, text, args.output)
    print(text)
    return 0 if all(math.isfinite(r["tvd"].psnr) for r in rows) else 1  # type: ignore[union-attr]


if __name__ == "__main__":
    raise SystemExit(main())
