"""Noise estimation and automatic weight against the truth, an oracle and scikit-image.

Protocol (PROTOCOL.md, cropped to keep the run short on a shared 2-core machine):
scikit-image's grey (camera, moon, coins, brick, grass) and colour (astronaut, coffee, chelsea,
immunohistochemistry, rocket) images, ``img_as_float``, the central ``--size`` square crop;
noise ``sigma / 255 * z``, z from ``default_rng(1234 + i)`` drawn at full size and cropped the
same way, no clipping.

1. Noise: every estimator of :mod:`tvdenoise.noise` at sigma 5, 10, 25, 50; relative error.
2. Weight at sigma 10, 25, 50 (beta 1, isotropic, vectorial, tol 1e-4):
   - oracle: best PSNR over weights ``sigma * 2^(k/2)``, k = -6..6, refined by golden steps
     to a ratio 2^(1/16) around the best;
   - auto: ``denoise(f, weight="auto")`` (sigma estimated);
   - J-invariance: scikit-image's ``calibrate_denoiser`` with ``denoise_tv_chambolle`` over
     weights ``0.01 * 2^(k/2)``, k = 0..12 (it is not told sigma), then plain
     ``denoise_tv_chambolle`` at the chosen weight (better than the masked output it returns);
   - cost: wall time of auto over one solve at the chosen weight in the same process (best
     of 3 each), and the same in solver iterations (a trial's batch of two counted twice).
3. Cost on the whole images at sigma 25, the same two ratios (on the crops a solve takes a
   few milliseconds and the noise estimate's fixed cost dominates), and on retina
   (1411x1411 colour), whose weight is searched on its central 1024x1024 crop (its search
   iterations are counted in proportion to the crop's share of the pixels).

Run ``python benchmarks/bench_auto_weight.py`` (about 15 minutes on a loaded 2-core machine);
``--write`` replaces this script's section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import write_section

GREY = ["camera", "moon", "coins", "brick", "grass"]
COLOUR = ["astronaut", "coffee", "chelsea", "immunohistochemistry", "rocket"]
# PROTOCOL.md's image for timing at size (1411x1411 colour, noise seed 1234 + 10): above
# 1024x1024, so its weight is searched on the central crop.
LARGE = "retina"
NOISE_SIGMAS = (5, 10, 25, 50)
WEIGHT_SIGMAS = (10, 25, 50)
RESULTS = Path(__file__).with_name("RESULTS.md")
SECTION = "bench_auto_weight.py"


def load(name: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Clean crop and its unit noise, per the protocol."""
    from skimage import data, img_as_float

    full = img_as_float(getattr(data, name)())
    index = (GREY + COLOUR + [LARGE]).index(name)
    noise = np.random.default_rng(1234 + index).standard_normal(full.shape)
    h, w = full.shape[:2]
    top, left = max((h - size) // 2, 0), max((w - size) // 2, 0)
    window = (slice(top, top + size), slice(left, left + size))
    return full[window], noise[window]


def psnr(clean: np.ndarray, image: np.ndarray) -> float:
    from skimage.metrics import peak_signal_noise_ratio

    return float(peak_signal_noise_ratio(clean, image, data_range=1.0))


def noise_table(names: list[str], size: int) -> list[str]:
    from tvdenoise.noise import NOISE_METHODS, estimate_sigma

    errors: dict[tuple[str, int], list[float]] = {}
    lines = [
        "| method | sigma | median abs. rel. error | worst image (error) |",
        "| --- | --- | --- | --- |",
    ]
    for name in names:
        clean, noise = load(name, size)
        for sigma in NOISE_SIGMAS:
            noisy = clean + sigma / 255 * noise
            for method in NOISE_METHODS:
                estimate = estimate_sigma(noisy, method=method) * 255
                errors.setdefault((method, sigma), []).append(estimate / sigma - 1)
    for method in NOISE_METHODS:
        for sigma in NOISE_SIGMAS:
            values = errors[(method, sigma)]
            worst = int(np.argmax(np.abs(values)))
            lines.append(
                f"| {method} | {sigma} | {statistics.median(np.abs(values)):.1%} | "
                f"{names[worst]} ({values[worst]:+.1%}) |"
            )
    return lines


def oracle(clean: np.ndarray, noisy: np.ndarray, sigma: float) -> tuple[float, float]:
    """Best (PSNR, weight) with the clean image: coarse grid, then halving steps."""
    import tvdenoise as tvd

    scores: dict[float, float] = {}

    def score(log2_ratio: float) -> float:
        if log2_ratio not in scores:
            weight = sigma * 2.0**log2_ratio
            scores[log2_ratio] = psnr(clean, tvd.denoise(noisy, weight=weight))
        return scores[log2_ratio]

    for k in range(-6, 7):
        score(k / 2)
    best = max(scores, key=scores.__getitem__)
    for step in (1 / 4, 1 / 8, 1 / 16):
        best = max((best - step, best, best + step), key=score)
    return scores[best], sigma * 2.0**best


def calibrated(noisy: np.ndarray) -> tuple[float, np.ndarray]:
    """scikit-image's J-invariance calibration of denoise_tv_chambolle (not told sigma)."""
    from skimage.restoration import calibrate_denoiser, denoise_tv_chambolle

    channel_axis = -1 if noisy.ndim == 3 else None
    parameters = {
        "weight": [0.01 * 2 ** (k / 2) for k in range(13)],
        "channel_axis": [channel_axis],
    }
    calibrated = calibrate_denoiser(noisy, denoise_tv_chambolle, denoise_parameters=parameters)
    best_weight = float(calibrated.keywords["denoiser_kwargs"]["weight"])
    # The plain denoiser at the calibrated weight: better than the masked J-invariant output
    # calibrate_denoiser returns, so the stronger baseline.
    return best_weight, denoise_tv_chambolle(noisy, weight=best_weight, channel_axis=channel_axis)


def best_of(repeats: int, run: Any) -> tuple[float, Any]:
    """The shortest wall time of ``repeats`` calls, and the last call's result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def cost_table(names: list[str]) -> list[str]:
    """Cost of auto on the whole images at sigma 25 (the crops make a solve so short that
    the noise estimate dominates)."""
    import tvdenoise as tvd
    from tvdenoise.auto_weight import search_windows

    lines = [
        "| image | size | one solve (s) | noise estimate, whole image (s) | auto (s) "
        "| time ratio | iteration ratio |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    time_ratios, iteration_ratios = [], []
    for name in names:
        clean, noise = load(name, 1 << 16)
        noisy = clean + 25 / 255 * noise
        estimate_seconds, _ = best_of(3, lambda noisy=noisy: tvd.estimate_sigma(noisy))
        auto_seconds, (_, record) = best_of(
            3, lambda noisy=noisy: tvd.denoise(noisy, weight="auto", return_record=True)
        )
        choice = record.weight_choice
        fixed_seconds, (_, fixed) = best_of(
            3, lambda noisy=noisy, w=choice.weight: tvd.denoise(noisy, weight=w, return_record=True)
        )
        time_ratios.append(auto_seconds / fixed_seconds)
        # Search iterations count for the share of the image searched (its tiles).
        height, width = noisy.shape[:2]
        windows = search_windows(height, width)
        share = 1.0 if windows is None else sum(s * s for _, _, s in windows) / (height * width)
        search = 2 * choice.iterations * share
        iteration_ratios.append((search + record.iterations) / fixed.iterations)
        lines.append(
            f"| {name} | {noisy.shape[1]}x{noisy.shape[0]} | {fixed_seconds:.3f} | "
            f"{estimate_seconds:.3f} | {auto_seconds:.3f} | {time_ratios[-1]:.1f} | "
            f"{iteration_ratios[-1]:.1f} |"
        )
    lines += [
        "",
        f"- whole images: wall time median {statistics.median(time_ratios):.1f}x "
        f"(max {max(time_ratios):.1f}x), solver iterations median "
        f"{statistics.median(iteration_ratios):.1f}x (max {max(iteration_ratios):.1f}x); "
        "target <= 4x",
    ]
    return lines


def weight_table(names: list[str], size: int) -> tuple[list[str], list[str]]:
    import tvdenoise as tvd

    rows = [
        "| image | sigma | sigma est. | oracle weight | oracle PSNR | auto weight | auto PSNR "
        "| auto - oracle | J-inv. PSNR | time ratio | iteration ratio |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    gaps: list[float] = []
    versus_j: list[float] = []
    time_ratios: list[float] = []
    iteration_ratios: list[float] = []
    for name in names:
        clean, noise = load(name, size)
        for sigma in WEIGHT_SIGMAS:
            noisy = clean + sigma / 255 * noise
            best_psnr, best_weight = oracle(clean, noisy, sigma / 255)
            auto_seconds, (auto, record) = best_of(
                3, lambda noisy=noisy: tvd.denoise(noisy, weight="auto", return_record=True)
            )
            choice = record.weight_choice
            fixed_seconds, (_, fixed) = best_of(
                3,
                lambda noisy=noisy, w=choice.weight: tvd.denoise(
                    noisy, weight=w, return_record=True
                ),
            )
            _, j_image = calibrated(noisy)
            auto_psnr, j_psnr = psnr(clean, auto), psnr(clean, j_image)
            time_ratio = auto_seconds / fixed_seconds
            iteration_ratio = (2 * choice.iterations + record.iterations) / fixed.iterations
            gaps.append(auto_psnr - best_psnr)
            versus_j.append(auto_psnr - j_psnr)
            time_ratios.append(time_ratio)
            iteration_ratios.append(iteration_ratio)
            rows.append(
                f"| {name} | {sigma} | {choice.sigma * 255:.1f} | {best_weight:.4f} | "
                f"{best_psnr:.2f} | {choice.weight:.4f} | {auto_psnr:.2f} | "
                f"{auto_psnr - best_psnr:+.2f} | {j_psnr:.2f} | {time_ratio:.1f} | "
                f"{iteration_ratio:.1f} |"
            )
    summary = [
        f"- auto - oracle PSNR: mean {statistics.mean(gaps):+.2f} dB, worst {min(gaps):+.2f} dB "
        f"(target: mean >= -0.3, every image >= -0.6)",
        f"- auto - J-invariance PSNR: mean {statistics.mean(versus_j):+.2f} dB, "
        f"worst {min(versus_j):+.2f} dB",
        f"- cost of auto over one solve at the chosen weight: wall time median "
        f"{statistics.median(time_ratios):.1f}x (max {max(time_ratios):.1f}x), solver iterations "
        f"median {statistics.median(iteration_ratios):.1f}x (max {max(iteration_ratios):.1f}x); "
        f"target <= 4x",
    ]
    return rows, summary


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", nargs="+", default=GREY + COLOUR, choices=GREY + COLOUR)
    parser.add_argument("--size", type=int, default=256, help="crop size (default 256)")
    parser.add_argument("--skip-noise", action="store_true")
    parser.add_argument("--skip-weight", action="store_true")
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument("--skip-large", action="store_true", help="no retina row in the cost table")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    load_average = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        "## Automatic weight (`benchmarks/bench_auto_weight.py`)",
        "",
        f'Central {args.size}x{args.size} crops, noise per PROTOCOL.md, "Noise", torch '
        f"{torch.__version__}, 2 threads; load average at start {load_average} (shared "
        "machine: wall-time ratios are noisy, the iteration ratio is not).",
    ]
    if not args.skip_noise:
        table = noise_table(args.images, args.size)
        lines += ["", "### Noise estimation (sigma of 255)", "", *table]
    if not args.skip_weight:
        rows, summary = weight_table(args.images, args.size)
        lines += ["", "### Weight: auto against the oracle and J-invariance", "", *rows, ""]
        lines += summary
    if not args.skip_cost:
        names = args.images + ([] if args.skip_large else [LARGE])
        lines += ["", "### Cost on the whole images (sigma 25)", "", *cost_table(names)]
    print("\n".join(lines))
    if args.write:
        write_section(SECTION, lines)
    return lines


if __name__ == "__main__":
    main()
