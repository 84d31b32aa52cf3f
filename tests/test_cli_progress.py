"""The live progress a person sees: the command run in a pseudo-terminal (stderr a terminal,
stdout a pipe, as in ``tvdenoise photo.png --json > run.jsonl``), and the same runs off a
terminal through CliRunner, where nothing of the display may appear."""

from __future__ import annotations

import json
import re
from pathlib import Path

from helpers import run_in_terminal, save_noisy_png, terminal_lines
from typer.testing import CliRunner

from tvdenoise.cli import app
from tvdenoise.progress import STAGES

runner = CliRunner()


def test_terminal_shows_each_stage_and_a_bar_towards_the_target(tmp_path: Path) -> None:
    save_noisy_png(tmp_path / "photo.png", seed=1, size=192)
    code, stdout, shown = run_in_terminal(["photo.png", "--weight", "auto", "--json"], tmp_path)
    assert code == 0, shown
    assert (tmp_path / "photo_denoised.png").exists()
    lines = terminal_lines(shown)
    # Every stage is drawn on the image's own line, in the order it came.
    staged = [line for line in lines if line.startswith("photo.png ") and "->" not in line]
    firsts = [next(i for i, line in enumerate(staged) if stage in line) for stage in STAGES]
    assert firsts == sorted(firsts), staged
    assert any(re.search(r"choosing the weight \(trial \d\)", line) for line in staged)
    # The solve's bar goes by the gap towards its target, not by iterations of --max-iter.
    bars = [line for line in lines if re.search(r"\d+% gap \d\.\de-\d\d -> \d\.\de-\d\d", line)]
    assert bars, lines
    assert "/2000" not in shown
    # stdout, a pipe, holds the JSON lines alone: the display never went through it.
    records = [json.loads(line) for line in stdout.splitlines()]
    assert [record["type"] for record in records] == ["image", "summary"]
    assert records[0]["status"] == "ok" and records[0]["weight_auto"] is True


def test_terminal_shows_a_line_per_running_image_under_workers(tmp_path: Path) -> None:
    for seed, name in enumerate(("a.png", "b.png", "c.png")):
        save_noisy_png(tmp_path / "in" / name, seed, size=96)
    code, stdout, shown = run_in_terminal(
        ["in", "-o", "out", "-j", "2", "--weight", "0.1"], tmp_path
    )
    assert code == 0, shown
    assert stdout == ""
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "a_denoised.png",
        "b_denoised.png",
        "c_denoised.png",
    ]
    lines = terminal_lines(shown)
    # Each image had a line of its own with its stage, sent back by its worker process.
    for name in ("a.png", "b.png", "c.png"):
        own = [line for line in lines if line.startswith(name) and "->" not in line]
        assert any(any(stage in line for stage in STAGES) for line in own), (name, lines)
    assert any(line.startswith("images") for line in lines)
    assert "starting 2 worker processes" in shown
    assert any(re.fullmatch(r"[0-3]/3", line) for line in lines)  # the batch's count
    # The summary lines are printed above the display and stay.
    assert "tvdenoise: 3 ok in" in shown


def test_off_a_terminal_nothing_of_the_display_is_written(tmp_path: Path) -> None:
    for seed, name in enumerate(("a.png", "b.png")):
        save_noisy_png(tmp_path / "in" / name, seed)
    result = runner.invoke(
        app, [str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-j", "2", "--json"]
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [record["type"] for record in records] == ["image", "image", "summary"]
    # stderr has the images' summary lines and nothing of the live display.
    assert "\x1b[" not in result.stderr and "━" not in result.stderr
    for stage in ("reading", "estimating noise", "choosing the weight", "writing"):
        assert stage not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 3  # two images, the summary


def test_quiet_draws_nothing_on_a_terminal(tmp_path: Path) -> None:
    save_noisy_png(tmp_path / "photo.png", seed=2)
    code, stdout, shown = run_in_terminal(["photo.png", "--weight", "0.1", "-q"], tmp_path)
    assert code == 0 and stdout == ""
    assert (tmp_path / "photo_denoised.png").exists()
    assert not any(stage in shown for stage in STAGES) and "━" not in shown
