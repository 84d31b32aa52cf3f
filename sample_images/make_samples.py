"""Write the sample images of this folder: clean images and Gaussian-noise versions.

The clean images are scikit-image's bundled samples (public domain or CC0, see README.md),
halved in size by averaging 2 x 2 blocks. The noisy versions add Gaussian noise with standard
deviation 25 (on the 0-255 scale), clip to [0, 255] and round to uint8. The noise is drawn from
numpy's default_rng with a fixed seed per image, so running this again gives the same files.

Usage::

    python sample_images/make_samples.py            # writes next to this script
    python sample_images/make_samples.py OUTPUT_DIR
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

SIGMA = 25  # noise standard deviation on the 0-255 scale
FIRST_SEED = 1234  # image i of SAMPLES gets default_rng(FIRST_SEED + i)

# name -> loader; every one is public domain or CC0 (see README.md for sources).
SAMPLES: dict[str, Callable[[], np.ndarray]] = {
    "camera": data.camera,  # grey, 512 x 512 -> 256 x 256
    "astronaut": data.astronaut,  # colour, 512 x 512 -> 256 x 256
    "coffee": data.coffee,  # colour, 400 x 600 -> 200 x 300 (not square, on purpose)
}


def halve(image: np.ndarray) -> np.ndarray:
    """Average 2 x 2 blocks (an exact, deterministic anti-aliased downscale) to uint8."""
    height, width = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
    blocks = image[:height, :width].astype(np.float64)
    blocks = blocks.reshape(height // 2, 2, width // 2, 2, *image.shape[2:])
    return np.rint(blocks.mean(axis=(1, 3))).astype(np.uint8)


def add_noise(clean: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """Add N(0, sigma^2) noise on the 0-255 scale, clip to [0, 255], round to uint8."""
    noise = np.random.default_rng(seed).standard_normal(clean.shape)
    return np.rint(np.clip(clean + sigma * noise, 0, 255)).astype(np.uint8)


def write_png(path: Path, pixels: np.ndarray) -> None:
    Image.fromarray(pixels).save(path, format="PNG", optimize=True)


def main(output: Path) -> None:
    output.mkdir(parents=True, exist_ok=True)
    for index, (name, load) in enumerate(SAMPLES.items()):
        clean = halve(load())
        noisy = add_noise(clean, SIGMA, FIRST_SEED + index)
        write_png(output / f"{name}.png", clean)
        write_png(output / f"{name}_noisy_sigma{SIGMA}.png", noisy)
        print(f"{name}: {clean.shape} {clean.dtype}, noise seed {FIRST_SEED + index}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
