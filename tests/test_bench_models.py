"""benchmarks/bench_models.py: its Chambolle-Pock for the candidate models solves the default
model when given it (forward stencil, no Huber term, or a vanishing one), the other models
differ from it, and the quick run works."""

from __future__ import annotations

import numpy as np
import torch

import tvdenoise


def test_candidate_solver_matches_the_default_model_and_runs(camera_crop) -> None:
    import bench_models

    f = np.ascontiguousarray(camera_crop[1][:40, :36], dtype=np.float64)
    forward = bench_models.STENCILS["forward"]
    ours = bench_models.solve_model(f, 0.1, forward, 0.0)
    reference = tvdenoise.denoise(f, weight=0.1, tv="isotropic", tol=1e-8, dtype=torch.float64)
    assert np.abs(ours - reference).max() < 2e-3
    # The script's symmetric stencils are the library's default model, solved independently.
    symmetric = bench_models.solve_model(f, 0.1, bench_models.STENCILS["symmetric"], 0.0)
    default = tvdenoise.denoise(f, weight=0.1, tol=1e-8, dtype=torch.float64)
    assert np.abs(symmetric - default).max() < 2e-3
    assert np.abs(default - reference).max() > 1e-2
    # avg4 is a different model: its minimiser differs, and is smoother along diagonals.
    averaged = bench_models.solve_model(f, 0.1, bench_models.STENCILS["avg4"], 0.0)
    assert np.abs(averaged - reference).max() > 1e-2
    # Huber smoothing with a vanishing threshold is TV again; with c = 0.1 it is not.
    tiny = bench_models.solve_model(f, 0.1, forward, 1e-6)
    assert np.abs(tiny - reference).max() < 2e-3
    smoothed = bench_models.solve_model(f, 0.1, forward, 0.1)
    assert np.abs(smoothed - reference).max() > 5e-3
    lines = bench_models.main(["--quick"])
    assert (
        lines[-1].startswith("| moon | 10 |") and lines[-1].count("|") == 8
    )  # 7 cells: 3 + forward, symmetric, 2 models
