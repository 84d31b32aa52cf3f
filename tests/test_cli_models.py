"""The TGV and nonlocal models on the command line, in config files and in reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import save_noisy_png
from PIL import Image
from typer.testing import CliRunner

from tvdenoise.cli import app
from tvdenoise.config import load_config

runner = CliRunner()


@pytest.mark.parametrize("tv", ["tgv", "nonlocal"])
def test_tv_model_on_the_command_line_denoises_and_reports(tmp_path: Path, tv: str) -> None:
    source = save_noisy_png(tmp_path / "in.png", seed=1, size=20)
    output = tmp_path / "out.png"
    report = tmp_path / "report.json"
    result = runner.invoke(
        app,
        [
            str(source),
            "-o",
            str(output),
            "--tv",
            tv,
            "--weight",
            "0.1",
            "--tol",
            "1e-2",
            "--tgv-ratio",
            "3",
            "--report",
            str(report),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    before = np.asarray(Image.open(source), dtype=float)
    after = np.asarray(Image.open(output), dtype=float)
    assert after.shape == before.shape and after.std() < before.std()
    record = json.loads(report.read_text())["images"][0]
    assert record["tv"] == tv
    assert record["tgv_ratio"] == (3.0 if tv == "tgv" else None)


def test_tv_model_and_ratio_in_a_config_file(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text('tv = "tgv"\ntgv_ratio = 2.5\n')
    assert load_config(path) == {"tv": "tgv", "tgv_ratio": 2.5}
    path.write_text("tgv_ratio = -1\n")
    with pytest.raises(Exception, match="tgv_ratio must be > 0"):
        load_config(path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tv", "tgv", "--beta", "1.5"], "beta = 1"),
        (["--tv", "curvelet"], "--tv must be one of"),
        (["--tv", "nonlocal", "--stack", "volume", "--weight", "0.1"], "2-D images"),
    ],
)
def test_bad_model_options_are_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    source = save_noisy_png(tmp_path / "in.png", seed=2, size=12)
    result = runner.invoke(app, [str(source), "-o", str(tmp_path / "out.png"), *args])
    assert result.exit_code == 2
    assert message in result.output
