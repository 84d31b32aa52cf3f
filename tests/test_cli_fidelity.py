"""The CLI's --fidelity accepts the new data terms (validated against FIDELITY_NAMES)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tvdenoise.cli import app

runner = CliRunner()


@pytest.mark.parametrize(("fidelity", "weight"), [("l1", "0.8"), ("poisson", "0.5")])
def test_cli_fidelity_option_denoises(tmp_path: Path, fidelity: str, weight: str) -> None:
    rng = np.random.default_rng(0)
    pixels = np.full((24, 24), 128, dtype=np.uint8)
    speckle = rng.random(pixels.shape)
    pixels[speckle < 0.1], pixels[speckle > 0.9] = 0, 255
    source = tmp_path / "in.png"
    Image.fromarray(pixels).save(source)
    result = runner.invoke(
        app,
        [str(source), "--fidelity", fidelity, "--weight", weight, "-o", str(tmp_path / "out.png")],
    )
    assert result.exit_code == 0, result.output
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert out.dtype == np.uint8 and out.shape == pixels.shape
    error_in = np.abs(pixels.astype(int) - 128).mean()
    error_out = np.abs(out.astype(int) - 128).mean()
    # L1 removes nearly all impulses from a flat image; Poisson (an L2-like model) reduces them.
    assert error_out < (0.1 if fidelity == "l1" else 0.8) * error_in


def test_cli_rejects_unknown_fidelity(tmp_path: Path) -> None:
    source = tmp_path / "in.png"
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(source)
    result = runner.invoke(app, [str(source), "--fidelity", "huber"])
    assert result.exit_code == 2
