"""Make the README's pictures of the two models beyond local TV.

``benchmarks/tgv_example.png``: staircasing. A shaded ramp (bench_quality.py's ``roof``, a
pyramid of four affine faces), sigma 10/255; panels noisy, the default model (symmetric TV)
and ``tv="tgv"``, each at its automatic (SURE) weight, then the errors of the two (result
minus clean, times 8 around mid-grey): TV's error shows the flat terraces it puts on each
sloped face, TGV's is noise-like.

``benchmarks/nonlocal_example.png``: texture. A crop of scikit-image's brick, sigma 25/255;
panels noisy, the default model and ``tv="nonlocal"``, each at its automatic weight.

Run: ``python benchmarks/make_models_figure.py`` (about a minute on 2 cores); it prints each
panel's weight and PSNR, which the README quotes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_quality import synthetic

import tvdenoise

HERE = Path(__file__).resolve().parent
TGV_OUTPUT = HERE / "tgv_example.png"
NONLOCAL_OUTPUT = HERE / "nonlocal_example.png"
#: Pixels between panels, and the enlargement of each panel (nearest neighbour).
GAP, ZOOM = 4, 2


def psnr(u: np.ndarray, clean: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((u - clean) ** 2)))


def strip(panels: list[np.ndarray]) -> np.ndarray:
    """Panels side by side (white gaps), each enlarged ZOOM times, as 8-bit grey."""
    enlarged = [np.kron(np.clip(p, 0, 1), np.ones((ZOOM, ZOOM))) for p in panels]
    gap = np.ones((enlarged[0].shape[0], GAP))
    joined = np.concatenate([part for panel in enlarged for part in (panel, gap)][:-1], axis=1)
    return np.round(joined * 255).astype(np.uint8)


def error_panel(u: np.ndarray, clean: np.ndarray, gain: float = 8.0) -> np.ndarray:
    """The error ``u - clean`` times ``gain`` around mid-grey: staircases show as blocks."""
    return 0.5 + gain * (u - clean)


def denoised(noisy: np.ndarray, tv: str, sigma: float) -> tuple[np.ndarray, float]:
    u, record = tvdenoise.denoise(noisy, weight="auto", sigma=sigma, tv=tv, return_record=True)
    return np.asarray(u, dtype=np.float64), record.weight_choice.weight


def tgv_figure(output: Path = TGV_OUTPUT, size: int = 96) -> list[tuple[str, float, float]]:
    from PIL import Image

    clean = synthetic("roof", size)
    sigma = 10 / 255
    noisy = clean + sigma * np.random.default_rng(1234).standard_normal(clean.shape)
    rows, panels = [], [noisy]
    for tv in ("symmetric", "tgv"):
        u, weight = denoised(noisy, tv, sigma)
        rows.append((tv, weight, psnr(u, clean)))
        panels.append(u)
    panels += [error_panel(u, clean) for u in panels[1:]]
    Image.fromarray(strip(panels)).save(output)
    return rows


def nonlocal_figure(
    output: Path = NONLOCAL_OUTPUT, size: int = 96
) -> list[tuple[str, float, float]]:
    from PIL import Image
    from skimage import data, img_as_float

    clean = img_as_float(data.brick())[200 : 200 + size, 200 : 200 + size]
    sigma = 25 / 255
    noisy = clean + sigma * np.random.default_rng(1234).standard_normal(clean.shape)
    rows, panels = [], [noisy]
    for tv in ("symmetric", "nonlocal"):
        u, weight = denoised(noisy, tv, sigma)
        rows.append((tv, weight, psnr(u, clean)))
        panels.append(u)
    Image.fromarray(strip(panels)).save(output)
    return rows


def main() -> list[tuple[str, float, float]]:
    torch.set_num_threads(2)
    return tgv_figure() + nonlocal_figure()


if __name__ == "__main__":
    for tv, weight, value in main():
        print(f"tv={tv}: weight {weight:.4g}, PSNR {value:.2f} dB")
