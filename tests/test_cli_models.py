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


def _preset_run(tmp_path: Path, source: Path, preset: str) -> tuple[np.ndarray, dict]:
    output = tmp_path / f"{preset}.png"
    result = runner.invoke(
        app, [str(source), "-o", str(output), "--preset", preset, "--json", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.splitlines()[0])
    return np.asarray(Image.open(output), dtype=float), record


def test_shaded_preset_runs_tgv_and_keeps_a_ramp_smooth(tmp_path: Path) -> None:
    # A 40x40 ramp (affine: TGV 0) with noise of sigma 10 in 8 bits: the shaded preset solves
    # TGV at the automatic weight and ends nearer the ramp than the default model does.
    y, x = np.mgrid[0:40, 0:40]
    clean = 40.0 + 3.0 * x + 1.5 * y
    noisy = clean + 10.0 * np.random.default_rng(3).standard_normal(clean.shape)
    source = tmp_path / "ramp.png"
    Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8)).save(source)
    shaded, record = _preset_run(tmp_path, source, "shaded")
    assert record["tv"] == "tgv" and record["weight_auto"] and record["tgv_ratio"] == 2.0
    default, default_record = _preset_run(tmp_path, source, "default")
    assert default_record["tv"] == "symmetric"
    error = np.sqrt(np.mean((shaded - clean) ** 2))
    assert error < np.sqrt(np.mean((default - clean) ** 2))


def test_texture_preset_runs_nonlocal_tv_at_the_automatic_weight(tmp_path: Path) -> None:
    source = save_noisy_png(tmp_path / "in.png", seed=2, size=24)
    after, record = _preset_run(tmp_path, source, "texture")
    assert record["tv"] == "nonlocal" and record["weight_auto"]
    assert after.std() < np.asarray(Image.open(source), dtype=float).std()
