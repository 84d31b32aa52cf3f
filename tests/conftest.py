from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

try:
    import torch
except ModuleNotFoundError:  # .ci/run's check on the oldest Python runs a torch-free subset
    pass
else:
    torch.set_num_threads(2)

# The benchmark scripts import their shared helpers (benchmarks/common.py) as a top-level
# module, as they do when run as scripts.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

# CI runs the property tests with a fixed seed (.ci/run sets HYPOTHESIS_PROFILE=ci), so a
# landing never depends on luck; locally they explore new examples on every run.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session")
def camera_crop() -> tuple[np.ndarray, np.ndarray]:
    """A 128x128 crop of scikit-image's camera, clean and with Gaussian noise (sigma 25/255)."""
    from skimage import data, img_as_float

    clean = img_as_float(data.camera())[200:328, 200:328]
    noisy = clean + 25 / 255 * np.random.default_rng(1234).standard_normal(clean.shape)
    return clean, noisy


@pytest.fixture(scope="session")
def astronaut_crop() -> tuple[np.ndarray, np.ndarray]:
    """A 96x96x3 crop of scikit-image's astronaut, clean and noisy (sigma 25/255)."""
    from skimage import data, img_as_float

    clean = img_as_float(data.astronaut())[40:136, 180:276]
    noisy = clean + 25 / 255 * np.random.default_rng(1239).standard_normal(clean.shape)
    return clean, noisy
