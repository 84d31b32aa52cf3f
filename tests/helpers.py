"""Small test images shared by the batch tests (imported as a top-level module: pytest puts
tests/ on sys.path)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def save_noisy_png(path: Path, seed: int, size: int = 24) -> Path:
    """A grey ``size`` x ``size`` PNG: a bright rectangle on a dark ground plus noise (25/255)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    clean = np.full((size, size), 60.0)
    clean[size // 4 : 3 * size // 4, size // 3 :] = 190.0
    noisy = np.clip(clean + 25 * rng.standard_normal(clean.shape), 0, 255)
    Image.fromarray(noisy.astype(np.uint8)).save(path)
    return path
