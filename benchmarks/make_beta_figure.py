"""Make benchmarks/beta_example.png: the seed observation on the exponent beta.

beta < 1 leaves small-dot artifacts (isolated noise specks survive: the non-convex penalty
charges little for a large jump), beta = 1 is classic TV, beta > 1 removes the dots but blurs
edges. Each beta gets the weight at which the residual ``||u - f||`` equals the noise level
(the discrepancy principle), so the panels remove the same amount of "noise".

Run: ``python benchmarks/make_beta_figure.py`` (about a minute). Panels, left to right: noisy
(sigma 25/255), beta 0.5, 1, 2; a 112x112 crop of scikit-image's camera.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tvdenoise

OUTPUT = Path(__file__).with_name("beta_example.png")
BETAS = (0.5, 1.0, 2.0)


def discrepancy_weight(noisy: np.ndarray, sigma: float, beta: float, steps: int = 8) -> float:
    """Weight whose result has RMS residual ``sigma`` (bisection on log weight)."""
    low, high = 1e-4, 10.0
    for _ in range(steps):
        middle = float(np.sqrt(low * high))
        u = tvdenoise.denoise(noisy, weight=middle, beta=beta, tol=1e-4, max_iter=1000)
        if np.sqrt(np.mean((u - noisy) ** 2)) > sigma:
            high = middle
        else:
            low = middle
    return float(np.sqrt(low * high))


def main(output: Path = OUTPUT, size: int = 112) -> list[tuple[float, float, float]]:
    from PIL import Image
    from skimage import data, img_as_float

    torch.set_num_threads(2)
    clean = img_as_float(data.camera())[60 : 60 + size, 200 : 200 + size]
    sigma = 25 / 255
    noisy = clean + sigma * np.random.default_rng(1234).standard_normal(clean.shape)
    panels = [noisy]
    rows = []
    for beta in BETAS:
        weight = discrepancy_weight(noisy, sigma, beta)
        u = tvdenoise.denoise(noisy, weight=weight, beta=beta)
        psnr = float(10 * np.log10(1 / np.mean((u - clean) ** 2)))
        rows.append((beta, weight, psnr))
        panels.append(u)
    gap = np.ones((size, 4))
    strip = np.concatenate([p for panel in panels for p in (panel, gap)][:-1], axis=1)
    Image.fromarray(np.round(np.clip(strip, 0, 1) * 255).astype(np.uint8)).save(output)
    return rows


if __name__ == "__main__":
    for beta, weight, psnr in main():
        print(f"beta {beta:g}: weight {weight:.4g}, PSNR {psnr:.2f} dB")
