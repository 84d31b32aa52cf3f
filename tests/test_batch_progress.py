"""Progress events from the runners (tvdenoise.batch, tvdenoise.workers): each image's
stages and solve updates reach ``on_progress(job, event)``, from this process and from worker
processes, and a stop asked for during the weight search ends it at the next trial."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from helpers import save_noisy_png

from tvdenoise.batch import process_job
from tvdenoise.planning import Job
from tvdenoise.progress import (
    CHOOSING,
    ESTIMATING,
    READING,
    SOLVING,
    WRITING,
    SolveProgress,
    Stage,
)
from tvdenoise.settings import RunSettings
from tvdenoise.workers import run_jobs


def _jobs(folder: Path, count: int, size: int = 32) -> list[Job]:
    jobs = []
    for index in range(count):
        source = save_noisy_png(folder / f"{index}.png", seed=index, size=size)
        jobs.append(Job(source, folder / "out" / f"{index}.png"))
    return jobs


def _collect(jobs: list[Job], settings: RunSettings, workers: int = 1) -> dict[str, list]:
    events: dict[str, list] = {job.label: [] for job in jobs}
    results = list(
        run_jobs(
            jobs,
            settings,
            workers=workers,
            on_progress=lambda job, event: events[job.label].append(event),
        )
    )
    assert [result.status for result in results] == ["ok"] * len(jobs)
    return events


def _stages(events: list) -> list[str]:
    return [event.name for event in events if isinstance(event, Stage)]


def _solve_updates_follow_the_solving_stage(events: list) -> None:
    solving = next(i for i, e in enumerate(events) if isinstance(e, Stage) and e.name == SOLVING)
    writing = next(i for i, e in enumerate(events) if isinstance(e, Stage) and e.name == WRITING)
    updates = events[solving + 1 : writing]
    assert updates and all(isinstance(e, SolveProgress) for e in updates)
    fractions = [e.fraction for e in updates]
    assert all(0.0 <= f <= 1.0 for f in fractions)
    assert updates[0].first_gap == updates[0].gap  # measured from the solve's own first gap


def test_each_image_reports_its_stages_in_order(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path, 2)
    events = _collect(jobs, RunSettings.of(weight="auto"))
    for job in jobs:
        stages = _stages(events[job.label])
        trials = stages.count(CHOOSING)
        assert trials >= 3
        assert stages == [READING, ESTIMATING] + [CHOOSING] * trials + [SOLVING, WRITING]
        _solve_updates_follow_the_solving_stage(events[job.label])


def test_images_solved_as_one_batch_share_its_progress(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path, 2)
    events = _collect(jobs, RunSettings.of(weight=0.1, batch_size=2))
    for job in jobs:
        stages = [str(event) for event in events[job.label] if isinstance(event, Stage)]
        assert stages == [READING, "solving (batch of 2)", WRITING]
    updates = [[e for e in events[job.label] if isinstance(e, SolveProgress)] for job in jobs]
    assert updates[0] == updates[1] and updates[0]


def test_worker_processes_send_their_images_progress_back(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path, 3)
    events = _collect(jobs, RunSettings.of(weight=0.1), workers=2)
    for job in jobs:
        assert _stages(events[job.label]) == [READING, SOLVING, WRITING]
        _solve_updates_follow_the_solving_stage(events[job.label])


def test_pages_of_a_stack_are_named_in_the_solving_stage(tmp_path: Path) -> None:
    import tifffile

    rng = np.random.default_rng(0)
    pages = np.clip(128 + 30 * rng.standard_normal((3, 24, 24)), 0, 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "stack.tif", pages, photometric="minisblack")  # 3 pages
    job = Job(tmp_path / "stack.tif", tmp_path / "out.tif")
    seen: list = []
    result = process_job(job, RunSettings.of(weight=0.1, stack="frames"), on_progress=seen.append)
    assert result.status == "ok", result.error
    stages = [str(event) for event in seen if isinstance(event, Stage)]
    assert stages == [READING, *(f"solving (page {k} of 3)" for k in (1, 2, 3)), WRITING]


def test_a_stop_during_the_weight_search_ends_it_at_the_next_trial(tmp_path: Path) -> None:
    (job,) = _jobs(tmp_path, 1, size=64)
    stop = threading.Event()
    seen: list = []

    def on_progress(event: object) -> None:
        seen.append(event)
        if event == Stage(CHOOSING, "trial 2"):
            stop.set()  # as Ctrl-C does, while the second trial runs

    result = process_job(job, RunSettings.of(weight="auto"), stop=stop, on_progress=on_progress)
    assert result.status == "interrupted"
    assert seen[-1] == Stage(CHOOSING, "trial 2")  # no third trial, no solve, no writing
    assert job.target is not None and not job.target.exists()


@pytest.mark.parametrize("workers", [1, 2])
def test_without_on_progress_nothing_is_sent(tmp_path: Path, workers: int) -> None:
    jobs = _jobs(tmp_path, 2)
    results = list(run_jobs(jobs, RunSettings.of(weight=0.1), workers=workers))
    assert [result.status for result in results] == ["ok", "ok"]
