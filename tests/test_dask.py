"""Batch jobs on a Dask cluster (--dask-scheduler): the same outputs, names, skip-existing,
reports and exit codes as a local run, with the images denoised by the cluster's workers.

The cluster is a LocalCluster started here: two workers of one thread each, in this process
(fast to start) but talking TCP, so every task and result is serialised as on a real cluster.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from pathlib import Path

import pytest
from helpers import save_noisy_png
from typer.testing import CliRunner

from tvdenoise import planning
from tvdenoise.cli import app
from tvdenoise.errors import ClusterError
from tvdenoise.settings import RunSettings

runner = CliRunner()
NAMES = ["a.png", "b.png", "sub/c.png", "sub/d.png"]


@pytest.fixture(scope="module")
def scheduler() -> str:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=False,
        protocol="tcp://",
        dashboard_address=None,
    ) as cluster:
        yield cluster.scheduler_address


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """in/ with four small images (two in a subfolder); the working folder is tmp_path, so
    inputs and outputs are named by relative paths, as users type them."""
    for seed, name in enumerate(NAMES):
        save_noisy_png(tmp_path / "in" / name, seed)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def _by_input(lines: list[dict]) -> dict[str, dict]:
    return {line["input"]: line for line in lines if line["type"] == "image"}


def _outputs(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*.png")}


def test_cluster_outputs_equal_a_local_run(folder: Path, scheduler: str) -> None:
    common = ["in", "-r", "--weight", "0.1", "--json"]
    local = runner.invoke(app, [*common, "-o", "local"])
    remote = runner.invoke(app, [*common, "-o", "remote", "-j", "2", "--dask-scheduler", scheduler])
    assert local.exit_code == 0, local.stderr
    assert remote.exit_code == 0, remote.stderr
    assert "--workers is ignored with --dask-scheduler" in remote.stderr

    assert _outputs(folder / "remote") == _outputs(folder / "local")
    assert len(_outputs(folder / "remote")) == len(NAMES)
    local_lines, remote_lines = _by_input(_lines(local.stdout)), _by_input(_lines(remote.stdout))
    assert sorted(remote_lines) == sorted(local_lines) == [f"in/{name}" for name in NAMES]
    for name, line in remote_lines.items():
        assert line["status"] == "ok"
        assert line["output"] == local_lines[name]["output"].replace("local/", "remote/")
        assert line["iterations"] == local_lines[name]["iterations"]
    summary = _lines(remote.stdout)[-1]
    assert summary["type"] == "summary" and summary["ok"] == len(NAMES)


def test_skip_existing_and_report_with_a_cluster(folder: Path, scheduler: str) -> None:
    args = ["in", "-r", "-o", "out", "--weight", "0.1", "--dask-scheduler", scheduler]
    assert runner.invoke(app, [*args, "-q"]).exit_code == 0
    (folder / "out/sub/c_denoised.png").unlink()
    kept = (folder / "out/a_denoised.png").stat().st_mtime_ns

    result = runner.invoke(app, [*args, "--skip-existing", "--report", "run.json", "--json"])
    assert result.exit_code == 0, result.stderr
    summary = _lines(result.stdout)[-1]
    assert summary["skipped"] == 3 and summary["ok"] == 1 and summary["failed"] == 0
    assert (folder / "out/sub/c_denoised.png").exists()
    assert (folder / "out/a_denoised.png").stat().st_mtime_ns == kept

    images = json.loads((folder / "run.json").read_text())["images"]
    assert [image["input"] for image in images] == [f"in/{name}" for name in NAMES]
    assert [image["status"] for image in images] == ["skipped", "skipped", "ok", "skipped"]
    assert images[2]["output"] == "out/sub/c_denoised.png" and images[2]["iterations"] > 0


def test_a_corrupt_file_fails_alone_as_in_a_local_run(folder: Path, scheduler: str) -> None:
    (folder / "in/broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    common = ["in", "-r", "--weight", "0.1", "--json"]
    local = runner.invoke(app, [*common, "-o", "local"])
    remote = runner.invoke(app, [*common, "-o", "remote", "--dask-scheduler", scheduler])
    assert remote.exit_code == local.exit_code == 1

    lines = _by_input(_lines(remote.stdout))
    assert lines["in/broken.png"]["status"] == "failed"
    assert (
        lines["in/broken.png"]["error"] == _by_input(_lines(local.stdout))["in/broken.png"]["error"]
    )
    assert lines["in/broken.png"]["error"].startswith("in/broken.png: ")
    assert [lines[f"in/{name}"]["status"] for name in NAMES] == ["ok"] * len(NAMES)
    assert len(_outputs(folder / "remote")) == len(NAMES)
    assert "in/broken.png" in remote.stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_scheduler_is_one_line_and_exit_2(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("distributed")
    monkeypatch.setattr("tvdenoise.distributed.CONNECT_TIMEOUT", 1.0)
    address = f"tcp://127.0.0.1:{_free_port()}"
    result = runner.invoke(app, ["in", "-o", "out", "--weight", "0.1", "--dask-scheduler", address])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and address in result.stderr
    assert result.stdout == "" and not (folder / "out").exists()

    malformed = runner.invoke(app, ["in", "-o", "out", "--dask-scheduler", "login1"])
    assert malformed.exit_code == 2 and malformed.stderr.count("\n") == 1
    assert "tcp://host:8786" in malformed.stderr


def test_without_distributed_the_error_says_what_to_install(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    result = runner.invoke(app, ["in", "--dask-scheduler", "tcp://127.0.0.1:8786"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert 'pip install "tvdenoise[dask]"' in result.stderr


def test_stdin_and_stdout_are_refused_with_a_cluster(folder: Path) -> None:
    address = "tcp://127.0.0.1:8786"  # never contacted: refused while checking the options
    for args in (["-"], ["in/a.png", "-o", "-"]):
        result = runner.invoke(app, [*args, "--dask-scheduler", address], input=b"")
        assert result.exit_code == 2 and "stdin (-) and stdout (-o -)" in result.stderr


def test_dask_scheduler_is_a_config_key(folder: Path) -> None:
    (folder / "cluster.toml").write_text('dask_scheduler = "tcp://login1:8786"\n')
    shown = runner.invoke(app, ["--config", "cluster.toml", "--show-config"])
    assert 'dask_scheduler = "tcp://login1:8786"' in shown.stdout
    assert "# dask_scheduler = (not set)" in runner.invoke(app, ["--show-config"]).stdout
    # --dry-run plans without contacting the scheduler.
    dry = runner.invoke(app, ["in", "-o", "out", "--config", "cluster.toml", "--dry-run"])
    assert dry.exit_code == 0 and "in/a.png -> out/a_denoised.png" in dry.stdout


# --- the library function ------------------------------------------------------------------


def _jobs(folder: Path, count: int) -> list[planning.Job]:
    for seed in range(len(NAMES), count):
        save_noisy_png(folder / "in" / f"extra{seed}.png", seed)
    found = planning.discover(["in"], recursive=True)
    jobs, _ = planning.plan(found.sources, "out", folder_inputs=True)
    assert len(jobs) == count
    return jobs


def test_a_stop_waits_only_for_jobs_in_flight(folder: Path, scheduler: str) -> None:
    from tvdenoise.distributed import run_jobs_dask

    jobs = _jobs(folder, 10)
    stop = threading.Event()
    stop.set()
    settings = RunSettings.of(weight=0.1, device="cpu")
    assert list(run_jobs_dask(jobs, settings, address=scheduler, stop=stop)) == []
    assert not (folder / "out").exists()

    stop.clear()
    results = []
    for result in run_jobs_dask(jobs, settings, address=scheduler, stop=stop):
        results.append(result)
        stop.set()
    # Two workers of one thread: at most four jobs in flight when the first one finished.
    assert 1 <= len(results) <= 5
    assert {result.status for result in results} <= {"ok", "interrupted"}
    written = {p.relative_to(folder).as_posix() for p in (folder / "out").rglob("*.png")}
    assert written == {result.output for result in results if result.status == "ok"}


def test_workers_send_each_images_progress_to_the_client(folder: Path, scheduler: str) -> None:
    from tvdenoise.distributed import run_jobs_dask
    from tvdenoise.progress import READING, SOLVING, SolveProgress, Stage

    jobs = _jobs(folder, 4)
    events: dict[str, list] = {job.label: [] for job in jobs}
    settings = RunSettings.of(weight=0.1, device="cpu")
    results = list(
        run_jobs_dask(
            jobs,
            settings,
            address=scheduler,
            on_progress=lambda job, event: events[job.label].append(event),
        )
    )
    assert sorted(result.status for result in results) == ["ok"] * 4
    # Labelled with the names the user gave (the workers saw absolute paths), in order: the
    # image's reading is sent long before its result, so it is there for every image.
    for job in jobs:
        assert events[job.label][:1] == [Stage(READING)], events[job.label]
    everything = [event for stream in events.values() for event in stream]
    assert Stage(SOLVING) in everything
    assert any(isinstance(event, SolveProgress) and event.gap is not None for event in everything)


def test_a_terminal_shows_a_line_per_image_the_cluster_runs(folder: Path, scheduler: str) -> None:
    from helpers import run_in_terminal, terminal_lines

    code, stdout, shown = run_in_terminal(
        ["in", "-r", "-o", "out", "--weight", "0.1", "--dask-scheduler", scheduler], folder
    )
    assert code == 0, shown
    assert stdout == "" and len(list((folder / "out").rglob("*.png"))) == len(NAMES)
    lines = terminal_lines(shown)
    assert "sending the images to the Dask cluster" in shown
    for name in ("a.png", "b.png", "c.png", "d.png"):
        own = [line for line in lines if line.startswith(name) and "->" not in line]
        assert any(stage in line for line in own for stage in ("reading", "solving")), lines


def test_a_task_that_raises_is_a_failed_result_naming_the_file(
    folder: Path, scheduler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tvdenoise import distributed as cluster

    received = []
    real = cluster.process_job

    def flaky(job: planning.Job, *args: object, **kwargs: object) -> object:
        received.append(job)
        if job.source is not None and job.source.name == "b.png":
            raise MemoryError("worker out of memory")
        return real(job, *args, **kwargs)

    monkeypatch.setattr(cluster, "process_job", flaky)  # the workers run in this process
    jobs = _jobs(folder, len(NAMES))
    results = {
        result.input: result
        for result in cluster.run_jobs_dask(
            jobs, RunSettings.of(weight=0.1, device="cpu"), address=scheduler, report=True
        )
    }
    assert results["in/b.png"].status == "failed"
    assert results["in/b.png"].error == "in/b.png: unexpected MemoryError: worker out of memory"
    assert results["in/b.png"].report_record().status == "failed"
    assert [results[f"in/{name}"].status for name in NAMES if name != "b.png"] == ["ok"] * 3
    # Workers get absolute paths (they need not share the client's working folder).
    assert all(job.source.is_absolute() and job.target.is_absolute() for job in received)


def test_connect_without_distributed_raises_a_cluster_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tvdenoise.distributed import connect

    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ClusterError, match=r"tvdenoise\[dask\]"):
        connect("tcp://127.0.0.1:8786")


def test_a_worker_that_dies_on_an_image_fails_that_image_alone(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Real worker processes (their nannies restart them): b.png kills any worker that takes it,
    # as the out-of-memory killer would; Dask retries it on other workers, then gives up, and
    # run_jobs_dask tries it once more. Images that were on a dying worker with it run again.
    distributed = pytest.importorskip("distributed")
    import dask

    from tvdenoise import distributed as cluster

    monkeypatch.setenv("TVDENOISE_FAULT_KILL_WORKER", str(folder / "in" / "b.png"))
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 1}),
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as local,
    ):
        results = {
            result.input: result
            for result in cluster.run_jobs_dask(
                _jobs(folder, len(NAMES)),
                RunSettings.of(weight=0.1, device="cpu"),
                address=local.scheduler_address,
            )
        }
    assert results["in/b.png"].status == "failed"
    assert results["in/b.png"].error == (
        "in/b.png: every worker that ran it died (out of memory?), twice over"
    )
    others = {name: results[f"in/{name}"] for name in NAMES if name != "b.png"}
    assert {name: r.status for name, r in others.items()} == dict.fromkeys(others, "ok"), {
        name: r.error for name, r in others.items()
    }
    assert (folder / "out" / "a_denoised.png").exists()


def test_a_mask_image_is_sent_by_its_absolute_path(
    folder: Path, scheduler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The workers find the mask image as they find the images: by an absolute path.
    import numpy as np
    from PIL import Image

    import tvdenoise.distributed as distributed_runs

    Image.fromarray(np.full((24, 24), 255, np.uint8)).save(folder / "mask.png")
    seen = folder / "seen.txt"  # the task is serialised: it records into a file
    run_on_worker = distributed_runs._run_on_worker

    def recording(job, settings, *args):  # type: ignore[no-untyped-def]
        with open(seen, "a") as log:
            log.write(f"{settings.read.mask}\n")
        return run_on_worker(job, settings, *args)

    monkeypatch.setattr(distributed_runs, "_run_on_worker", recording)
    args = ["in/a.png", "in/b.png", "--weight", "0.1", "--mask", "mask.png", "-o", "remote"]
    result = runner.invoke(app, [*args, "--dask-scheduler", scheduler])
    assert result.exit_code == 0, result.stderr
    assert seen.read_text().splitlines() == [str(folder / "mask.png")] * 2
    assert sorted(p.name for p in (folder / "remote").iterdir()) == [
        "a_denoised.png",
        "b_denoised.png",
    ]
