"""Batch folders and scripted pipelines: inputs, outputs, resume, signals, workers, shards,
configs, JSON lines and exit codes (CliRunner, and real subprocesses where it matters)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import save_noisy_png
from PIL import Image
from typer.testing import CliRunner

from tvdenoise import config, planning
from tvdenoise.cli import app

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """in/a.png, in/b.png, in/sub/c.png, in/sub/deeper/d.png, a text file, a hidden image."""
    root = tmp_path / "in"
    for seed, name in enumerate(["a.png", "b.png", "sub/c.png", "sub/deeper/d.png"]):
        save_noisy_png(root / name, seed)
    (root / "notes.txt").write_text("not an image")
    save_noisy_png(root / ".hidden.png", 9)
    return root


def _json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _subprocess(args: list[str], **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tvdenoise", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **kwargs,
    )


# --- 1. inputs -----------------------------------------------------------------------------


def test_folder_skips_non_images_and_counts_them(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, [str(tree), "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    lines = _json_lines(result.stdout)
    images = [line["input"] for line in lines if line["type"] == "image"]
    assert images == [str(tree / "a.png"), str(tree / "b.png")]
    skipped = {line["input"] for line in lines if line["type"] == "skipped_file"}
    assert len(skipped) == 2 and str(tree / "notes.txt") in skipped  # named, with a reason
    summary = lines[-1]
    assert summary["type"] == "summary" and summary["ok"] == 2
    assert summary["skipped_non_images"] == 2  # notes.txt and the hidden file
    assert "2 non-image or hidden files" in result.stderr and "1 subfolders" in result.stderr
    assert _files(out) == ["a_denoised.png", "b_denoised.png"]


def test_recursive_mirrors_the_tree_in_sorted_order(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, [str(tree), "-r", "-o", str(out), "--json", "-q"])
    assert result.exit_code == 0, result.output
    inputs = [line["input"] for line in _json_lines(result.stdout) if line["type"] == "image"]
    assert inputs == [str(tree / n) for n in ("a.png", "b.png", "sub/c.png", "sub/deeper/d.png")]
    assert _files(out) == [
        "a_denoised.png",
        "b_denoised.png",
        "sub/c_denoised.png",
        "sub/deeper/d_denoised.png",
    ]
    assert result.stderr == ""  # --quiet


def test_mixed_files_globs_and_duplicates(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [str(tree / "sub/c.png"), str(tree / "*.png"), str(tree / "a.png"), "-o", str(out)]
    result = runner.invoke(app, [*args, "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    plan = [line["input"] for line in _json_lines(result.stdout) if line["type"] == "plan"]
    # Arguments in order, a glob's matches sorted, a file named twice kept once.
    assert plan == [str(tree / "sub/c.png"), str(tree / "a.png"), str(tree / "b.png")]
    missing = runner.invoke(app, [str(tree / "*.jpg"), str(tree / "nope.png"), "-o", str(out)])
    assert missing.exit_code == 1
    assert "no files match" in missing.stderr and "no such file" in missing.stderr


def test_stdin_to_stdout_pipeline(tree: Path) -> None:
    data = (tree / "a.png").read_bytes()
    result = runner.invoke(app, ["-", "-q"], input=data)
    assert result.exit_code == 0, result.stderr
    out = Image.open(io.BytesIO(result.stdout_bytes))
    assert out.format == "PNG" and out.size == (24, 24)
    # The same image as the file route.
    assert runner.invoke(app, [str(tree / "a.png"), "-q"]).exit_code == 0
    on_disk = np.asarray(Image.open(tree / "a_denoised.png"))
    assert np.array_equal(np.asarray(out), on_disk)
    as_tiff = runner.invoke(app, ["-", "-o", "-", "--format", "tiff", "-q"], input=data)
    assert as_tiff.exit_code == 0 and as_tiff.stdout_bytes[:2] in (b"II", b"MM")


# --- 2. outputs ----------------------------------------------------------------------------


def test_output_to_stdout_from_a_file(tree: Path) -> None:
    result = runner.invoke(app, [str(tree / "a.png"), "-o", "-", "-q"])
    assert result.exit_code == 0
    assert result.stdout_bytes.startswith(b"\x89PNG")
    assert not (tree / "a_denoised.png").exists()
    several = runner.invoke(app, [str(tree), "-o", "-"])
    assert several.exit_code == 2 and "exactly one input" in several.stderr


def test_suffix_name_template_and_format(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, [str(tree), "-o", str(out), "--suffix", "_clean", "-q"])
    assert result.exit_code == 0 and _files(out) == ["a_clean.png", "b_clean.png"]
    result = runner.invoke(
        app, [str(tree), "-o", str(out), "--name", "{stem}_tv{suffix}", "--format", "tif", "-q"]
    )
    assert result.exit_code == 0, result.output
    assert "a_tv.tif" in _files(out)
    with Image.open(out / "a_tv.tif") as image:
        assert image.format == "TIFF"
    bad = runner.invoke(app, [str(tree), "-o", str(out), "--name", "{colour}.png"])
    assert bad.exit_code == 2 and "unknown field {colour}" in bad.stderr


def test_never_overwrites_inputs_or_outputs(tree: Path, tmp_path: Path) -> None:
    before = (tree / "a.png").read_bytes()
    result = runner.invoke(app, [str(tree / "a.png"), "--suffix", ""])
    assert result.exit_code == 2 and "overwrite the input" in result.stderr
    both = [str(tree / "a.png"), str(tree / "a_denoised.png"), "--overwrite"]
    (tree / "a_denoised.png").write_bytes((tree / "b.png").read_bytes())
    result = runner.invoke(app, both)  # a.png's output is the other input: refused
    assert result.exit_code == 2 and "overwrite the input" in result.stderr
    assert (tree / "a.png").read_bytes() == before
    out = tmp_path / "out"
    out.mkdir()
    (out / "a_denoised.png").write_bytes(b"precious")
    result = runner.invoke(app, [str(tree), "-o", str(out)])
    assert result.exit_code == 1 and "exists" in result.stderr
    assert (out / "a_denoised.png").read_bytes() == b"precious"
    assert (out / "b_denoised.png").exists()  # the batch went on


def test_an_output_of_another_input_is_refused_before_work(tree: Path) -> None:
    # b.png would be written over by a.png with this template: refused, nothing written.
    result = runner.invoke(app, [str(tree / "a.png"), str(tree / "b.png"), "-o", str(tree),
                                 "--name", "b.png"])  # fmt: skip
    assert result.exit_code == 2
    assert _files(tree).count("a_denoised.png") == 0


def test_earlier_outputs_in_a_folder_are_not_inputs(tree: Path) -> None:
    assert runner.invoke(app, [str(tree), "-q"]).exit_code == 0
    again = runner.invoke(app, [str(tree), "--dry-run", "--json"])
    plan = [line for line in _json_lines(again.stdout) if line["type"] == "plan"]
    assert [Path(line["input"]).name for line in plan] == ["a.png", "b.png"]
    assert _json_lines(again.stdout)[-1]["earlier_outputs"] == 2


# --- 3. resume and signals -----------------------------------------------------------------


def test_skip_existing_finishes_only_what_is_missing(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert runner.invoke(app, [str(tree / "a.png"), "-o", str(out) + "/", "-q"]).exit_code == 0
    stamp = (out / "a_denoised.png").stat().st_mtime_ns
    result = runner.invoke(app, [str(tree), "-r", "-o", str(out), "--skip-existing", "--json"])
    assert result.exit_code == 0
    summary = _json_lines(result.stdout)[-1]
    assert summary["skipped"] == 1 and summary["ok"] == 3
    assert (out / "a_denoised.png").stat().st_mtime_ns == stamp


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_mid_batch_leaves_complete_outputs_and_resumes(
    tmp_path: Path, signum: int, code: int
) -> None:
    folder = tmp_path / "in"
    for i in range(16):
        save_noisy_png(folder / f"img{i:02d}.png", i, size=64)
    out = tmp_path / "out"
    # --tol 0: every image runs all its iterations, long enough to be caught mid-batch.
    args = [str(folder), "-o", str(out), "--tol", "0", "--max-iter", "400", "--json"]
    process = _subprocess(args)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(out.glob("*_denoised.png")):
        time.sleep(0.02)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr
    lines = _json_lines(stdout)
    summary = lines[-1]
    assert summary["type"] == "summary" and summary["exit_code"] == code
    done = sorted(Path(line["output"]).name for line in lines if line.get("status") == "ok")
    assert 1 <= len(done) < 16
    assert summary["not_started"] + len(done) + summary["interrupted"] == 16
    assert sorted(p.name for p in out.iterdir()) == done  # no partial or temporary file
    for name in done:
        with Image.open(out / name) as image:
            image.load()  # decodes completely
    assert "received: stopping" in stderr
    # A re-run with --skip-existing finishes the set and leaves the finished ones alone.
    finished = {name: (out / name).read_bytes() for name in done}
    rerun = _subprocess([*args, "--skip-existing"])
    stdout, stderr = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, stderr
    assert len(list(out.iterdir())) == 16
    assert all((out / name).read_bytes() == data for name, data in finished.items())


# --- 4. workers ------------------------------------------------------------------------------


def test_workers_give_the_same_outputs_as_one_process(tree: Path, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    assert runner.invoke(app, [str(tree), "-r", "-o", str(one), "-q"]).exit_code == 0
    process = _subprocess([str(tree), "-r", "-o", str(two), "--workers", "2", "--json"])
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert _json_lines(stdout)[-1]["ok"] == 4
    assert _files(one) == _files(two)
    for name in _files(one):
        assert (one / name).read_bytes() == (two / name).read_bytes()


# --- 5. shards -----------------------------------------------------------------------------


def test_shards_are_disjoint_and_cover_the_whole_set(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    for i in range(11):
        save_noisy_png(folder / f"{i:02d}.png", i, size=4)
    everything = set()
    sizes = []
    for k in (1, 2, 3):
        result = runner.invoke(app, [str(folder), "--shard", f"{k}/3", "--dry-run", "--json"])
        assert result.exit_code == 0
        names = {line["input"] for line in _json_lines(result.stdout) if line["type"] == "plan"}
        assert not names & everything
        everything |= names
        sizes.append(len(names))
    assert everything == {str(p) for p in folder.iterdir()}
    assert max(sizes) - min(sizes) <= 1
    again = runner.invoke(app, [str(folder), "--shard", "2/3", "--dry-run"])
    assert again.stdout == runner.invoke(app, [str(folder), "--shard", "2/3", "--dry-run"]).stdout
    for text in ("0/3", "4/3", "a/b", "1"):
        with pytest.raises(Exception, match="shard"):
            planning.parse_shard(text)


# --- 6. configs ------------------------------------------------------------------------------


def _show(args: list[str]) -> dict:
    result = runner.invoke(app, [*args, "--show-config"])
    assert result.exit_code == 0, result.output
    return tomllib.loads(result.stdout)


def test_precedence_cli_over_config_over_preset_over_defaults(tmp_path: Path) -> None:
    assert _show([]) == {k: v for k, v in config.DEFAULTS.items() if v is not None}
    preset = config.load_preset("photo")
    assert _show(["--preset", "photo"])["weight"] == preset["weight"] != config.DEFAULTS["weight"]
    cfg = tmp_path / "my.toml"
    cfg.write_text('weight = 0.3\ntv = "anisotropic"\n')
    both = _show(["--preset", "photo", "--config", str(cfg)])
    assert both["weight"] == 0.3 and both["tv"] == "anisotropic"
    assert both["color"] == preset["color"]
    cli = _show(["--preset", "photo", "--config", str(cfg), "--weight", "0.07"])
    assert cli["weight"] == 0.07 and cli["tv"] == "anisotropic"


def test_show_config_feeds_back(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--preset", "scan", "--beta", "1.5", "--show-config"])
    saved = tmp_path / "saved.toml"
    saved.write_text(result.stdout)
    again = runner.invoke(app, ["--config", str(saved), "--show-config"])
    assert again.stdout == result.stdout


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("wieght = 0.1\n", "unknown key 'wieght'"),
        ("weight = -1\n", "weight must be > 0"),
        (
            'tv = "iso"\n',
            "tv must be one of isotropic, anisotropic, symmetric, tgv, nonlocal; got 'iso'",
        ),
        ("max_iter = 1.5\n", "max_iter must be an integer >= 1"),
        ("weight = \n", "not valid TOML"),
        ("recursive = 1\n", "recursive must be true or false"),
    ],
)
def test_bad_config_is_a_usage_error_naming_file_and_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    result = runner.invoke(app, ["--config", str(cfg), "x.png"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(cfg) in lines[0] and expected in lines[0]
    if "unknown key" in expected:
        assert "allowed keys: batch_size, beta, color" in lines[0]


def test_unknown_preset_lists_the_available_ones() -> None:
    result = runner.invoke(app, ["--preset", "nope", "x.png"])
    assert result.exit_code == 2 and "available: default" in result.stderr


def test_every_shipped_preset_is_valid_and_documented() -> None:
    names = config.preset_names()
    assert {"default", "photo", "scan", "microscopy-poisson", "salt-pepper-l1"} <= set(names)
    for name in names:
        config.load_preset(name)
        text = (ROOT / "configs" / f"{name}.toml").read_text()
        assert text.count("#") >= 3  # every preset explains its choices
    assert config.load_preset("default") == {
        k: v for k, v in config.DEFAULTS.items() if v is not None
    }


# --- 7. machine-readable output and exit codes ---------------------------------------------


def test_json_stdout_is_only_json_and_failures_are_named(tree: Path, tmp_path: Path) -> None:
    bad = tree / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    result = runner.invoke(app, [str(tree), "-o", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 1
    lines = _json_lines(result.stdout)  # every stdout line parses
    failed = [line for line in lines if line.get("status") == "failed"]
    assert len(failed) == 1 and failed[0]["input"] == str(bad) and str(bad) in failed[0]["error"]
    assert lines[-1] == {**lines[-1], "type": "summary", "ok": 2, "failed": 1, "exit_code": 1}
    assert f"tvdenoise: error: {bad}" in result.stderr


def test_dry_run_writes_nothing(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, [str(tree), "-r", "-o", str(out), "--dry-run"])
    assert result.exit_code == 0
    assert f"{tree / 'sub/c.png'} -> {out / 'sub/c_denoised.png'}" in result.stdout
    assert not out.exists()


def test_no_color_and_plain_stderr_off_terminal(tree: Path) -> None:
    args = [str(tree / "missing.png")]
    on_terminal = runner.invoke(app, args, env={"TTY_COMPATIBLE": "1", "NO_COLOR": None})
    assert "31m" in on_terminal.stderr  # a red "error:" on a terminal
    no_color = runner.invoke(app, args, env={"TTY_COMPATIBLE": "1", "NO_COLOR": "1"})
    assert "31m" not in no_color.stderr and "tvdenoise: error:" in no_color.stderr
    piped = runner.invoke(app, args)
    assert "\x1b[" not in piped.stderr
    assert piped.exit_code == no_color.exit_code == 1


def test_missing_input_argument_is_a_usage_error() -> None:
    result = runner.invoke(app, [])
    assert result.exit_code == 2 and "missing INPUT" in result.stderr


# --- 8. start-up ---------------------------------------------------------------------------


def test_help_version_and_show_config_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from tvdenoise.cli import main\n"
        "for args in (['--help'], ['--version'], ['--show-config']):\n"
        "    sys.argv = ['tvdenoise', *args]\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit as exit:\n"
        "        assert exit.code == 0, exit.code\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "assert 'numpy' not in sys.modules, 'numpy imported'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


# --- planning units ------------------------------------------------------------------------


def test_output_name_fields() -> None:
    rel = Path("scan.TIFF")
    assert planning.output_name(rel, suffix="_d", template=None, format=None) == "scan_d.TIFF"
    assert planning.output_name(rel, suffix="_d", template=None, format="tiff") == "scan_d.TIFF"
    assert planning.output_name(rel, suffix="_d", template=None, format="png") == "scan_d.png"
    assert (
        planning.output_name(rel, suffix="_d", template="{ext}-{stem}{tag}{suffix}", format=None)
        == "TIFF-scan_d.TIFF"
    )


def test_output_folder_inside_the_input_folder_is_not_read(tree: Path) -> None:
    inner = tree / "results"
    assert (
        runner.invoke(app, [str(tree), "-r", "-o", str(inner), "--suffix", "", "-q"]).exit_code == 0
    )
    again = runner.invoke(app, [str(tree), "-r", "-o", str(inner), "--suffix", "", "--dry-run"])
    assert "results" not in again.stdout.split(" -> ")[0]
    assert all(not line.startswith(str(inner)) for line in again.stdout.splitlines())
