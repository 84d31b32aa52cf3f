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
import functools
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


# The models beyond local TV (issue 26): TGV and nonlocal TV against the default model, each at
# its oracle weight and with the automatic weight, with seconds and peak memory per solve.
MODELS = {"default": {}, "tgv": {"tv": "tgv"}, "nonlocal": {"tv": "nonlocal"}}
#: Piecewise-affine synthetic images (256x256, grey) for TGV against staircasing.
SYNTHETIC = ("ramps", "facets", "roof")


def synthetic(name: str, size: int = 256) -> np.ndarray:
    """A piecewise-affine test image in [0.1, 0.9]: ``ramps`` (two shaded halves meeting at a
    jump), ``facets`` (a tilted disc on a shaded ground), ``roof`` (a pyramid)."""
    y, x = np.mgrid[0:size, 0:size] / (size - 1)
    if name == "ramps":
        return np.where(x < 0.5, 0.2 + 0.5 * y, 0.9 - 0.6 * x)
    if name == "facets":
        disc = (x - 0.55) ** 2 + (y - 0.45) ** 2 < 0.09
        return np.where(disc, 0.9 - 0.5 * x * y - 0.2 * y, 0.1 + 0.4 * x + 0.2 * y)
    if name == "roof":
        return 0.9 - 1.4 * np.maximum(np.abs(x - 0.5), np.abs(y - 0.5))
    raise ValueError(f"unknown synthetic image {name!r}")


def measured(method: Callable[[], object]) -> tuple[object, float, float]:
    """``method()``, its wall seconds and its peak resident memory above the start (MiB),
    sampled every 2 ms from /proc (Linux; 0 elsewhere)."""
    import threading

    def rss() -> float:
        try:
            with open("/proc/self/statm") as handle:
                return int(handle.read().split()[1]) * 4096 / 2**20
        except OSError:
            return 0.0

    base, peak, done = rss(), [0.0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss())
            done.wait(0.002)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    started = time.perf_counter()
    result = method()
    seconds = time.perf_counter() - started
    done.set()
    thread.join()
    return result, seconds, max(peak[0], rss()) - base


def model_scores(clean: np.ndarray, noisy: np.ndarray, sigma: float) -> dict[str, object]:
    """Each model of MODELS at its oracle weight and with ``weight="auto"`` (given the true
    sigma), with the seconds and peak memory of one solve at the oracle weight and of the
    automatic one."""
    row: dict[str, object] = {}
    guess = 0.004 * sigma * 255
    for model, options in MODELS.items():
        best = oracle(clean, noisy, tvdenoise_method(**options), guess)
        assert best.weight is not None
        weight = best.weight
        solve = functools.partial(tvdenoise.denoise, noisy, **options)
        _, seconds, memory = measured(functools.partial(solve, weight=weight))
        row[model] = best
        row[f"{model}_cost"] = (seconds, memory)
        auto, seconds, memory = measured(
            functools.partial(solve, weight="auto", sigma=sigma, return_record=True)
        )
        output, record = auto  # type: ignore[misc]
        row[f"{model}_auto"] = score(clean, output, record.weight_choice.weight)
        row[f"{model}_auto_cost"] = (seconds, memory)
    return row


def run_models(names: list[str], sigmas: list[int], crop: int) -> list[dict[str, object]]:
    import os

    rows = []
    order = list(GREY + COLOUR)
    for name in names:
        clean = synthetic(name) if name in SYNTHETIC else load(name, crop)
        index = order.index(name) if name in order else len(order) + 1 + SYNTHETIC.index(name)
        z = noise(index, clean.shape)
        for sigma in sigmas:
            noisy = clean + sigma / 255 * z
            row: dict[str, object] = {"image": name, "sigma": sigma, "colour": clean.ndim == 3}
            row.update(model_scores(clean, noisy, sigma / 255))
            row["load"] = os.getloadavg()[0]
            rows.append(row)
            print(format_model_row(row), flush=True)
    return rows


def format_model_row(row: dict[str, object]) -> str:
    cells = [str(row["image"]), str(row["sigma"])]
    for model in MODELS:
        for kind in ("", "_auto"):
            value = row[f"{model}{kind}"]
            seconds, memory = row[f"{model}{kind}_cost"]  # type: ignore[misc]
            cells.append(f"{_cell(value)} ({seconds:.2f} s, {memory:.0f} MiB)")
    default, default_auto = row["default"], row["default_auto"]
    for model in ("tgv", "nonlocal"):
        ours, ours_auto = row[model], row[f"{model}_auto"]
        cells.append(f"{ours.psnr - default.psnr:+.2f} / {ours_auto.psnr - default_auto.psnr:+.2f}")  # type: ignore[union-attr]
        ratio = row[f"{model}_cost"][0] / row["default_cost"][0]  # type: ignore[index]
        cells.append(f"{ratio:.1f}x")
    cells.append(f"{row['load']:.1f}")
    return "| " + " | ".join(cells) + " |"


def models_markdown(rows: list[dict[str, object]], crop: int, seconds: float) -> str:
    header = ["image", "sigma"]
    for model in MODELS:
        header += [f"{model} oracle", f"{model} auto"]
    header += [
        "tgv - default (oracle / auto, dB)",
        "tgv time / default",
        "nonlocal - default (oracle / auto, dB)",
        "nonlocal time / default",
        "load",
    ]
    images = "whole images" if crop == 0 else f"centred crop {crop}x{crop}"
    lines = [
        "## Models beyond local TV: PSNR (dB) / SSIM @ weight (seconds, peak MiB of one solve)",
        "",
        f"Generated by `python benchmarks/bench_quality.py --models` in {seconds / 60:.1f} min "
        f"(torch {torch.__version__}, 2 threads; load average per row in the last column: "
        "the machine is shared, so seconds are noisy). Protocol as above, "
        f"{images}; the synthetic piecewise-affine images ({', '.join(SYNTHETIC)}, 256x256) "
        "take noise seeds after the protocol's. default: `denoise(f, weight=w)`; tgv: "
        "`tv='tgv'` (tgv_ratio 2); nonlocal: `tv='nonlocal'` (graph from the default model "
        "at the same weight). auto: `weight='auto'` with the true sigma. Time ratios are "
        "of one solve at each one's oracle weight (nonlocal: pilot and graph included).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + " --- |" * len(header),
    ]
    lines += [format_model_row(row) for row in rows]

    def mean(key: str, names: tuple[str, ...], sigma: int | None = None) -> str:
        values = [
            r[key].psnr  # type: ignore[union-attr]
            for r in rows
            if r["image"] in names and (sigma is None or r["sigma"] == sigma)
        ]
        return f"{sum(values) / len(values):.3f}" if values else "-"

    parts = []
    for label, names in (("grey", GREY), ("colour", COLOUR), ("synthetic", SYNTHETIC)):
        for key in ("default", "default_auto", "tgv", "tgv_auto", "nonlocal", "nonlocal_auto"):
            parts.append(f"{label} {key} {mean(key, names)}")
    lines += ["", "Mean PSNR (dB): " + "; ".join(parts) + "."]
    return "\n".join(lines) + "\n"


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
    parser.add_argument(
        "--models",
        action="store_true",
        help="compare the default model, tgv and nonlocal (oracle and auto weights, seconds, "
        "memory) instead; --images may name the synthetic ramps, facets, roof",
    )
    parser.add_argument("--quick", action="store_true", help="tiny smoke run, no file written")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    if args.quick:
        args.images, args.sigmas, args.crop, args.no_bm3d = ["camera"], [25], 32, True
        args.betas = []
    start = time.perf_counter()
    if args.models:
        if args.images == list(GREY + COLOUR):
            args.images = list(GREY + COLOUR + SYNTHETIC)
        model_rows = run_models(args.images, args.sigmas, args.crop)
        text = models_markdown(model_rows, args.crop, time.perf_counter() - start)
        if not args.quick:
            write_section(SECTION + " models", text, args.output)
        print(text)
        return 0
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
