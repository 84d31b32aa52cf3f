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
    # "weight" is the weight used, as in the report's records; weight_auto says it was chosen.
    assert record["weight_auto"] is True and "weight_used" not in record
    assert record["sigma_estimated"] is True and abs(record["sigma"] * 255 - 25) < 0.15 * 25
    assert 0.03 < record["weight"] < 0.3
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
    assert record["weight"] == 0.1 and record["weight_auto"] is False


@pytest.mark.parametrize("given", ["15", "0.75", "200/255"])
def test_a_sigma_that_cannot_be_a_noise_level_is_refused_with_the_fraction_to_write(
    camera: Path, given: str
) -> None:
    result = runner.invoke(app, [str(camera), "--sigma", given])
    assert result.exit_code == 2
    value = float(given.split("/")[0]) / (255 if "/" in given else 1)
    assert f"--sigma is a noise level on the [0, 1] scale and at most 0.5, got {value:g}" in (
        result.stderr
    )
    assert f"write {value:g}/255" in result.stderr
    assert not list(camera.parent.glob("*_denoised*"))


def test_a_run_that_stops_unconverged_says_so_in_the_summary_and_json(camera: Path) -> None:
    result = runner.invoke(app, [str(camera), "--weight", "0.1", "--max-iter", "10", "--json"])
    assert result.exit_code == 0
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0]["converged"] is False and lines[0]["stop_reason"] == "max_iter"
    assert lines[-1]["type"] == "summary" and lines[-1]["not_converged"] == 1
    assert "1 ok, 1 not converged (see --max-iter)" in result.stderr


def test_an_automatic_weight_at_the_edge_of_its_search_is_flagged(tmp_path: Path) -> None:
    # Pure uniform noise with a claimed sigma of 0.001: no weight is small enough, and SURE
    # keeps pointing below the smallest one the search tries.
    import numpy as np
    from PIL import Image

    path = tmp_path / "noise.png"
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    result = runner.invoke(app, [str(path), "--sigma", "0.001", "--json"])
    assert result.exit_code == 0
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0]["weight_at_edge"] is True and lines[-1]["weight_at_edge"] == 1
    assert "at the edge of its search: check --sigma" in result.stderr
    assert "1 with the automatic weight at the edge of its search (check --sigma)" in result.stderr
    normal = runner.invoke(app, [str(path), "--sigma", "0.3", "--json", "--overwrite"])
    assert json.loads(normal.stdout.splitlines()[0])["weight_at_edge"] is False


def test_help_lists_every_solver() -> None:
    from tvdenoise import _validate

    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    # The values of every enumeration stand beside its flag (the metavar), from the one list
    # the checks use.
    from tvdenoise import config
    from tvdenoise.io import formats

    for flag, values in [
        ("--solver", _validate.SOLVER_NAMES),
        ("--tv", _validate.MODEL_KINDS),
        ("--color", _validate.COLOR_COUPLINGS),
        ("--fidelity", _validate.FIDELITY_NAMES),
        ("--stack", ("off", "frames", "volume")),
        ("--format", formats.OPTIONS),
        ("--preset", tuple(config.preset_names())),
    ]:
        assert f"{flag} [{'|'.join(values)}]" in text, flag
    assert "--solver [auto|chambolle_pock|rof|accelerated|gd|adam]" in text


def test_a_non_image_named_on_the_command_line_fails_alone(camera: Path) -> None:
    notes = camera.parent / "notes.txt"
    notes.write_text("not an image")
    out = camera.parent / "out"
    result = runner.invoke(
        app, [str(camera), str(notes), "-o", str(out), "--weight", "0.1", "--json"]
    )
    assert result.exit_code == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    failed = [line for line in lines if line.get("status") == "failed"]
    assert len(failed) == 1 and failed[0]["input"] == str(notes)
    assert failed[0]["output"] is None
    assert "not an image tvdenoise reads (extension .txt)" in failed[0]["error"]
    assert lines[-1]["ok"] == 1 and lines[-1]["failed"] == 1
    assert [p.suffix for p in out.iterdir()] == [".png"]
    # A wrong output name the user typed is still a usage error, before any work.
    typed = runner.invoke(app, [str(camera), "-o", str(camera.parent / "x.txt")])
    assert typed.exit_code == 2 and "unsupported format '.txt'" in typed.stderr


def test_failed_records_carry_no_output_path(tmp_path: Path, camera: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    out = tmp_path / "out"
    result = runner.invoke(
        app, [str(camera), str(broken), "-o", str(out), "--weight", "0.1", "--json"]
    )
    assert result.exit_code == 1
    records = {
        line["input"]: line
        for line in map(json.loads, result.stdout.splitlines())
        if line.get("type") == "image"
    }
    assert records[str(broken)]["status"] == "failed" and records[str(broken)]["output"] is None
    assert records[str(camera)]["output"] == str(out / f"{camera.stem}_denoised.png")
    assert not (out / "broken_denoised.png").exists()


def test_files_skipped_in_a_folder_are_named_with_the_reason(tmp_path: Path, camera: Path) -> None:
    folder = tmp_path / "mix"
    folder.mkdir()
    shutil.copy(camera, folder / "a.png")
    shutil.copy(camera, folder / "b.xyz")  # an image with an extension tvdenoise does not know
    (folder / "notes.txt").write_text("no image")
    (folder / ".hidden").write_text("")
    dry = runner.invoke(app, [str(folder), "--dry-run", "-o", str(tmp_path / "out")])
    assert dry.exit_code == 0
    expected = (
        f"{folder / 'b.xyz'}  [skipped: not an image extension (.xyz); if it is an image, "
        "name it on the command line with --format png]"
    )
    assert expected in dry.stdout
    assert f"{folder / '.hidden'}  [skipped: hidden file]" in dry.stdout
    run = runner.invoke(
        app, [str(folder), "-o", str(tmp_path / "out"), "--weight", "0.1", "--json"]
    )
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    skipped = {line["input"]: line["reason"] for line in lines if line["type"] == "skipped_file"}
    assert set(skipped) == {str(folder / n) for n in ("b.xyz", "notes.txt", ".hidden")}
    assert lines[-1]["skipped_non_images"] == 3
    plain = runner.invoke(app, [str(folder), "-o", str(tmp_path / "o2"), "--weight", "0.1"])
    assert "skipped 3 non-image or hidden files (named by -v, --dry-run and --json)" in plain.stderr
    # The hint holds: named with --format png, the unknown extension is read and written.
    named = runner.invoke(
        app, [str(folder / "b.xyz"), "--format", "png", "-o", str(tmp_path / "b.png"), "-q"]
    )
    assert named.exit_code == 0 and (tmp_path / "b.png").exists()


def test_verbose_names_skipped_files_and_times_each_stage(tmp_path: Path, camera: Path) -> None:
    folder = tmp_path / "mix"
    folder.mkdir()
    shutil.copy(camera, folder / "a.png")
    shutil.copy(camera, folder / "b.xyz")
    (folder / "notes.txt").write_text("no image")
    out = tmp_path / "out"
    result = runner.invoke(app, [str(folder), "-o", str(out), "-v", "--json"])
    assert result.exit_code == 0, result.output
    # On stderr, as --dry-run and --json name them on stdout, with the --format hint.
    assert (
        f"tvdenoise: skipped {folder / 'b.xyz'}: not an image extension (.xyz); if it is an "
        "image, name it on the command line with --format png" in result.stderr
    )
    assert f"tvdenoise: skipped {folder / 'notes.txt'}: not an image extension" in result.stderr
    assert "(named by" not in result.stderr  # named just above: no pointer to where
    records = [json.loads(line) for line in result.stdout.splitlines()]
    record = next(record for record in records if record["type"] == "image")
    line = next(line for line in result.stderr.splitlines() if line.startswith(str(folder)))
    times = dict(
        (name, float(value))
        for name, value in (part.rsplit(" ", 2)[:2] for part in line.rsplit(" (", 1)[1].split(", "))
    )
    assert list(times) == ["reading", "noise", "weight", "solving", "writing"]
    assert times["noise"] == pytest.approx(record["sigma_seconds"], abs=0.006)
    # The record's weight seconds include the noise estimate's; -v shows them apart.
    expected_weight = record["weight_seconds"] - record["sigma_seconds"]
    assert times["weight"] == pytest.approx(expected_weight, abs=0.006)
    assert times["solving"] == pytest.approx(record["solve_seconds"], abs=0.006)
    plain = runner.invoke(app, [str(folder), "-o", str(tmp_path / "o2"), "--weight", "0.1"])
    assert "skipped 2 non-image or hidden files (named by -v, --dry-run and --json)" in plain.stderr
    assert "tvdenoise: skipped " + str(folder / "b.xyz") not in plain.stderr


def test_quiet_and_verbose_contradict(camera: Path) -> None:
    result = runner.invoke(app, [str(camera), "-q", "-v"])
    assert result.exit_code == 2 and "--quiet and --verbose contradict" in result.stderr
