"""--weight auto (the default), --sigma and --estimate-noise on the command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tvdenoise.cli import app

runner = CliRunner()
SAMPLES = Path(__file__).resolve().parents[1] / "sample_images"


@pytest.fixture
def camera(tmp_path: Path) -> Path:
    """The 256x256 camera sample with Gaussian noise of sigma 25/255 added."""
    path = tmp_path / "camera.png"
    shutil.copy(SAMPLES / "camera_noisy_sigma25.png", path)
    return path


def test_estimate_noise_prints_sigma_and_writes_nothing(camera: Path) -> None:
    result = runner.invoke(app, [str(camera), "--estimate-noise"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{camera}: sigma ")
    lines = runner.invoke(app, [str(camera), "--estimate-noise", "--json"]).stdout.splitlines()
    payload = json.loads(lines[0])
    assert payload["type"] == "noise" and abs(payload["sigma_255"] - 25) < 0.15 * 25
    assert sorted(p.name for p in camera.parent.iterdir()) == ["camera.png"]


def test_default_weight_is_chosen_per_image(camera: Path) -> None:
    result = runner.invoke(app, [str(camera), "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.splitlines()[0])
    assert record["weight"] == "auto" and record["weight_auto"] is True
    assert record["sigma_estimated"] is True and abs(record["sigma"] * 255 - 25) < 0.15 * 25
    assert 0.03 < record["weight_used"] < 0.3
    assert "(auto; sigma" in result.stderr


def test_given_sigma_is_used(camera: Path) -> None:
    result = runner.invoke(app, [str(camera), "--sigma", "25/255", "--json", "-q"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.splitlines()[0])
    assert record["sigma_estimated"] is False and record["sigma"] == pytest.approx(25 / 255)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fidelity", "l1"], "give --weight for --fidelity l1"),
        (["--weight", "0.1", "--sigma", "0.1"], "--sigma is used only with --weight auto"),
        (["--weight", "abc"], "--weight must be a number > 0 or auto"),
        (["--sigma", "x/0"], "--sigma must be a number > 0"),
    ],
)
def test_auto_weight_usage_errors(camera: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, [str(camera), *args])
    assert result.exit_code == 2 and message in result.stderr


def test_fixed_weight_works_exactly_as_before(camera: Path) -> None:
    result = runner.invoke(app, [str(camera), "--weight", "0.1", "--json", "-q"])
    record = json.loads(result.stdout.splitlines()[0])
    assert record["weight"] == 0.1 and "weight_auto" not in record
