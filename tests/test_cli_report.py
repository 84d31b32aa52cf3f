"""--report, --reference and --report-images on the command line."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tvdenoise.cli import app
from tvdenoise.report import report_schema

runner = CliRunner()


@pytest.fixture
def pairs(tmp_path: Path) -> tuple[Path, Path]:
    """noisy/{a,b,c}.png and clean/{a,b,c}.png (c is colour)."""
    rng = np.random.default_rng(1)
    noisy, clean = tmp_path / "noisy", tmp_path / "clean"
    noisy.mkdir()
    clean.mkdir()
    for name, channels in (("a", 1), ("b", 1), ("c", 3)):
        shape = (32, 40) if channels == 1 else (32, 40, 3)
        truth = np.full(shape, 60.0)
        truth[8:24, 10:30] = 190.0
        noise = 25 * rng.standard_normal(shape)
        Image.fromarray(truth.astype(np.uint8)).save(clean / f"{name}.png")
        Image.fromarray(np.clip(truth + noise, 0, 255).astype(np.uint8)).save(noisy / f"{name}.png")
    return noisy, clean


def test_one_run_writes_json_csv_and_html_with_reference_metrics(pairs, tmp_path: Path) -> None:
    noisy, clean = pairs
    (noisy / "broken.png").write_bytes(b"not a png")
    reports = [tmp_path / "run.json", tmp_path / "run.csv", tmp_path / "run.html"]
    args = [str(noisy), "-o", str(tmp_path / "out"), "--reference", str(clean)]
    result = runner.invoke(app, [*args, *[f"--report={p}" for p in reports], "-q"])
    assert result.exit_code == 1  # broken.png failed, the others are done
    data = json.loads(reports[0].read_text())
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(data, report_schema())
    images = data["images"]
    # Plan order (sorted paths), the failure included with its reason.
    assert [Path(i["input"]).name for i in images] == ["a.png", "b.png", "broken.png", "c.png"]
    failed = images[2]
    assert failed["status"] == "failed" and "broken.png" in failed["error"]
    for record in (images[0], images[1], images[3]):
        assert record["status"] == "ok" and record["converged"] is True
        assert record["psnr_out"] > record["psnr_in"] + 3
        assert record["ssim_out"] > record["ssim_in"]
        # The default weight is chosen per image; the noise added was sigma 25/255.
        assert record["weight_auto"] is True and 0.02 < record["weight"] < 0.5
        assert abs(record["sigma"] - 25 / 255) < 0.25 * 25 / 255
        assert record["fidelity"] == "l2"
    assert images[3]["channels"] == 3
    assert data["settings"]["weight"] == "auto" and data["totals"]
    rows = list(csv.DictReader(reports[1].open()))
    assert len(rows) == 4 and rows[0]["input"].endswith("a.png")
    html = reports[2].read_text()
    for name in ("a.png", "b.png", "c.png", "broken.png"):
        assert name in html
    assert html.count("<svg") >= 3 and "http://" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )


def test_report_images_caps_the_pictures(pairs, tmp_path: Path) -> None:
    noisy, _ = pairs
    sizes = {}
    for cap in (0, 1, 3):
        report = tmp_path / f"r{cap}.html"
        out = tmp_path / f"out{cap}"
        result = runner.invoke(
            app, [str(noisy), "-o", str(out), "--report", str(report), "--report-images", str(cap)]
        )
        assert result.exit_code == 0, result.output
        sizes[cap] = report.read_text().count("data:image/png")
    assert sizes[0] == 0 < sizes[1] < sizes[3]
    assert sizes[3] == 3 * sizes[1]


def test_report_usage_errors_before_any_work(pairs, tmp_path: Path) -> None:
    noisy, _ = pairs
    out = tmp_path / "out"
    bad_ext = runner.invoke(app, [str(noisy), "-o", str(out), "--report", "r.txt"])
    assert bad_ext.exit_code == 2 and "r.txt" in bad_ext.stderr
    missing = runner.invoke(
        app, [str(noisy), "-o", str(out), "--report", "r.json", "--reference", "nowhere"]
    )
    assert missing.exit_code == 2 and "nowhere" in missing.stderr
    assert not out.exists()


def test_report_without_reference_has_no_metrics(pairs, tmp_path: Path) -> None:
    noisy, clean = pairs
    shutil.rmtree(clean)
    report = tmp_path / "r.json"
    result = runner.invoke(app, [str(noisy), "-o", str(tmp_path / "o"), "--report", str(report)])
    assert result.exit_code == 0
    images = json.loads(report.read_text())["images"]
    assert all(i["psnr_in"] is None for i in images)  # no reference: no metrics


def test_json_lines_and_report_records_give_each_shared_key_one_meaning(
    pairs, tmp_path: Path
) -> None:
    # "weight" and "solver" are what ran in both (the weight the search chose, the solver
    # auto picked); before, --json gave what was asked under those names.
    noisy, _ = pairs
    (noisy / "broken.png").write_bytes(b"not a png")
    report = tmp_path / "run.json"
    args = [str(noisy), "-o", str(tmp_path / "out"), "--json", "--report", str(report)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    by_input = {line["input"]: line for line in lines if line["type"] == "image"}
    records = json.loads(report.read_text())["images"]
    assert {record["input"] for record in records} == set(by_input)
    for record in records:
        line = by_input[record["input"]]
        shared = (set(record) & set(line)) - {"history"}
        assert {"input", "status", "error"} <= shared
        if record["status"] == "ok":
            assert {"weight", "weight_auto", "sigma", "solver", "iterations", "energy"} <= shared
            assert line["solver"] != "auto" and isinstance(line["weight"], float)
        else:  # nothing ran: no weight or solver; the report leaves the options it had None
            assert "weight" not in line and "solver" not in line
            shared = {key for key in shared if record[key] is not None}
        for key in shared:
            assert line[key] == pytest.approx(record[key]), key
