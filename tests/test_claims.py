"""Overlapping runs over one output folder (--skip-existing) do each image once."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import save_noisy_png

from tvdenoise.io import claims

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tvdenoise", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def _dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    return int(done.stdout)


def _write_claim(target: Path, host: str, pid: int, age: float = 0.0) -> Path:
    path = claims.claim_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"host": host, "pid": pid, "started": 0, "token": "other"}))
    if age:
        then = time.time() - age
        os.utime(path, (then, then))
    return path


# --- the claim files themselves ------------------------------------------------------------


def test_a_claim_is_exclusive_and_released_by_its_holder_only(tmp_path: Path) -> None:
    target = tmp_path / "a.png"
    mine = claims.take(target)
    assert mine is not None and mine.path == tmp_path / ".a.png.tvdenoise-claim"
    owner = json.loads(mine.path.read_text())
    assert owner["host"] == socket.gethostname() and owner["pid"] == os.getpid()
    with pytest.raises(claims.ClaimedElsewhere, match=f"pid {os.getpid()}"):
        claims.take(target)  # this process is alive: its claim holds
    claims.release(mine)
    assert not mine.path.exists()
    other = _write_claim(target, socket.gethostname(), os.getpid())
    claims.release(mine)  # not ours any more: left alone
    assert other.exists()


def test_a_claim_of_a_dead_process_on_this_host_is_taken_over(tmp_path: Path) -> None:
    target = tmp_path / "a.png"
    _write_claim(target, socket.gethostname(), _dead_pid())
    taken = claims.take(target)
    assert taken is not None and json.loads(taken.path.read_text())["pid"] == os.getpid()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".a.png.tvdenoise-claim"]


def test_a_claim_from_another_host_holds_until_it_is_stale(tmp_path: Path) -> None:
    target = tmp_path / "a.png"
    _write_claim(target, "elsewhere.example", 1, age=claims.STALE_SECONDS / 2)
    with pytest.raises(claims.ClaimedElsewhere, match=r"host elsewhere\.example, pid 1"):
        claims.take(target)
    _write_claim(target, "elsewhere.example", 1, age=claims.STALE_SECONDS + 60)
    taken = claims.take(target)
    assert taken is not None and json.loads(taken.path.read_text())["host"] != "elsewhere.example"


def test_renewing_touches_the_claim_at_most_every_renew_seconds(tmp_path: Path) -> None:
    claim = claims.take(tmp_path / "a.png")
    assert claim is not None
    old = time.time() - 1000
    os.utime(claim.path, (old, old))
    claims.renew(claim)  # just taken: not yet
    assert claim.path.stat().st_mtime == pytest.approx(old)
    claim.renewed -= claims.RENEW_SECONDS + 1
    claims.renew(claim)
    assert claim.path.stat().st_mtime > old + 900


def test_where_claim_files_cannot_be_made_the_run_goes_on_without(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> int:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(claims.os, "open", refuse)
    assert claims.take(tmp_path / "a.png") is None
    claims.release(None)
    claims.renew(None)


# --- runs ----------------------------------------------------------------------------------


def _folder(tmp_path: Path, count: int, size: int) -> None:
    for i in range(count):
        save_noisy_png(tmp_path / "in" / f"img{i:02d}.png", i, size=size)


def _summary(stdout: str) -> dict:
    return json.loads(stdout.splitlines()[-1])


@pytest.mark.slow
def test_two_overlapping_runs_share_the_folder_and_do_each_image_once(tmp_path: Path) -> None:
    _folder(tmp_path, 12, 64)
    args = ["in", "-o", "out", "--weight", "0.3", "--skip-existing", "--json"]
    first, second = _run(args, tmp_path), _run(args, tmp_path)
    (out1, err1), (out2, err2) = first.communicate(timeout=300), second.communicate(timeout=300)
    assert first.returncode == 0 and second.returncode == 0, err1 + err2
    done = [
        json.loads(line)["input"]
        for line in (out1 + out2).splitlines()
        if json.loads(line).get("status") == "ok"
    ]
    assert sorted(done) == [f"in/img{i:02d}.png" for i in range(12)]  # each exactly once
    summaries = _summary(out1), _summary(out2)
    assert sum(s["ok"] for s in summaries) == 12 and sum(s["skipped"] for s in summaries) == 12
    assert sum(s["failed"] for s in summaries) == 0
    assert "exists" not in err1 + err2
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [f"img{i:02d}_denoised.png" for i in range(12)]  # no claim, no temp left
    alone = _run(["in", "-o", "alone", "--weight", "0.3", "-q"], tmp_path)
    alone.communicate(timeout=300)
    for name in names:
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "alone" / name).read_bytes()


def test_a_live_claim_skips_the_image_and_a_dead_one_is_taken_over(tmp_path: Path) -> None:
    _folder(tmp_path, 2, 24)
    live = _write_claim(tmp_path / "out" / "img00_denoised.png", socket.gethostname(), os.getpid())
    _write_claim(tmp_path / "out" / "img01_denoised.png", socket.gethostname(), _dead_pid())
    process = _run(["in", "-o", "out", "--weight", "0.3", "--skip-existing", "--json"], tmp_path)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    records = {json.loads(line).get("input"): json.loads(line) for line in stdout.splitlines()}
    assert records["in/img00.png"]["status"] == "skipped"
    assert records["in/img00.png"]["error"] == (
        f"out/img00_denoised.png: being written by another run "
        f"(host {socket.gethostname()}, pid {os.getpid()})"
    )
    assert records["in/img01.png"]["status"] == "ok"
    assert live.exists()  # another run's live claim is never removed
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        ".img00_denoised.png.tvdenoise-claim",
        "img01_denoised.png",
    ]


@pytest.mark.slow
@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_leave_no_claim(tmp_path: Path, sent: int) -> None:
    _folder(tmp_path, 4, 200)
    args = ["in", "-o", "out", "--weight", "0.3", "--skip-existing", "--tol", "0"]
    process = _run([*args, "--max-iter", "100000", "-j", "2"], tmp_path)
    deadline = time.monotonic() + 60
    out = tmp_path / "out"
    while time.monotonic() < deadline and not list(out.glob(".*.tvdenoise-claim")):
        time.sleep(0.05)
    assert list(out.glob(".*.tvdenoise-claim")), "no claim was taken"
    process.send_signal(sent)
    process.communicate(timeout=120)
    assert process.returncode == 128 + sent
    assert not list(out.glob(".*.tvdenoise-claim"))


def test_a_dead_runs_claim_beside_a_written_output_is_removed_when_skipped(
    tmp_path: Path,
) -> None:
    # A run killed after writing its output and before releasing the claim leaves both: the
    # rerun skips the output and removes the claim (a live one beside an output stays).
    _folder(tmp_path, 2, 24)
    first = _run(["in", "-o", "out", "--weight", "0.3"], tmp_path)
    assert first.wait(timeout=120) == 0
    dead = _write_claim(tmp_path / "out" / "img00_denoised.png", socket.gethostname(), _dead_pid())
    live = _write_claim(tmp_path / "out" / "img01_denoised.png", socket.gethostname(), os.getpid())
    rerun = _run(["in", "-o", "out", "--weight", "0.3", "--skip-existing", "--json"], tmp_path)
    stdout, stderr = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, stderr
    statuses = [json.loads(line).get("status") for line in stdout.splitlines()]
    assert statuses.count("skipped") == 2
    assert not dead.exists() and live.exists()
    assert not claims.remove_stale(tmp_path / "out" / "img01_denoised.png")
