"""denoise(progress=True): a tqdm bar for notebooks, off by default, same result; and the
progress events a caller draws (tvdenoise.progress): stages, and the way to the stop by the gap."""

from __future__ import annotations

import numpy as np
import pytest

import tvdenoise as tvd
from tvdenoise.progress import (
    CHOOSING,
    ESTIMATING,
    SOLVING,
    WRITING,
    FrameProgress,
    SolveMeter,
    SolveProgress,
    Stage,
    from_message,
    gap_fraction,
    throttled,
    to_message,
)


def test_progress_bar_is_off_by_default(camera_crop, capsys: pytest.CaptureFixture[str]) -> None:
    _, noisy = camera_crop
    tvd.denoise(noisy[:32, :32], weight=0.1)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_progress_bar_shows_iterations_and_keeps_result(
    camera_crop, capsys: pytest.CaptureFixture[str]
) -> None:
    _, noisy = camera_crop
    seen: list[int] = []
    plain, record = tvd.denoise(noisy[:48, :48], weight=0.1, return_record=True)
    capsys.readouterr()
    shown, shown_record = tvd.denoise(
        noisy[:48, :48],
        weight=0.1,
        progress=True,
        callback=lambda info: seen.append(info.iteration),
        return_record=True,
    )
    captured = capsys.readouterr()
    np.testing.assert_array_equal(shown, plain)
    assert shown_record.iterations == record.iterations
    # The user's callback still runs, and the bar went to stderr, never stdout.
    assert seen == [h.iteration for h in record.history]
    assert captured.out == ""
    # tqdm redraws at most every 0.1 s, so only the bar itself is certain to be shown.
    assert "denoise" in captured.err and "/2000" in captured.err


# --- stages and the way to the stop (tvdenoise.progress) -------------------------------------


def test_automatic_weight_reports_its_stages_in_order(camera_crop) -> None:
    _, noisy = camera_crop
    stages: list[Stage] = []
    _, record = tvd.denoise(
        noisy[:64, :64], weight="auto", on_stage=stages.append, return_record=True
    )
    names = [stage.name for stage in stages]
    assert names[0] == ESTIMATING and names[-1] == SOLVING
    trials = [stage.detail for stage in stages if stage.name == CHOOSING]
    # One stage per trial of the search, numbered as they come.
    assert trials == [f"trial {k}" for k in range(1, len(record.weight_choice.trials) + 1)]
    assert names == [ESTIMATING] + [CHOOSING] * len(trials) + [SOLVING]


def test_given_sigma_and_fixed_weight_skip_the_stages_they_do_not_need(camera_crop) -> None:
    _, noisy = camera_crop
    given: list[str] = []
    tvd.denoise(
        noisy[:32, :32], weight="auto", sigma=25 / 255, on_stage=lambda s: given.append(s.name)
    )
    assert ESTIMATING not in given and given[0] == CHOOSING and given[-1] == SOLVING
    fixed: list[str] = []
    tvd.denoise(noisy[:32, :32], weight=0.1, on_stage=lambda s: fixed.append(s.name))
    assert fixed == [SOLVING]


def test_iteration_target_is_the_tolerance_for_floats(camera_crop) -> None:
    _, noisy = camera_crop
    seen: list[tvd.IterationInfo] = []
    _, record = tvd.denoise(
        noisy[:48, :48].astype(np.float32),
        weight=0.1,
        tol=1e-3,
        callback=seen.append,
        return_record=True,
    )
    assert record.stop_reason == "tol"
    assert {info.target for info in seen} == {1e-3}
    # The target is where the solve stopped: above it before the last check, at or below it then.
    assert all(info.gap > info.target for info in seen[:-1]) and seen[-1].gap <= 1e-3


def test_iteration_target_is_the_precision_gap_when_that_stops_the_solve(camera_crop) -> None:
    _, noisy = camera_crop
    image = np.round(np.clip(noisy[:64, :64], 0, 1) * 255).astype(np.uint8)
    seen: list[tvd.IterationInfo] = []
    _, record = tvd.denoise(image, weight=0.1, tol=1e-9, callback=seen.append, return_record=True)
    assert record.stop_reason == "precision"
    for info in seen:
        # sqrt(2 gap_abs / n) <= d  <=>  gap_abs / E <= d^2 n / (2 E), d = half a step of 1/255.
        distance = 0.5 / 255
        expected = distance**2 * image.size / (2 * abs(info.energy))
        assert info.target == pytest.approx(expected, rel=1e-9)
    assert all(info.gap > info.target for info in seen[:-1]) and seen[-1].gap <= seen[-1].target


def test_gap_fraction_is_linear_in_decades() -> None:
    assert gap_fraction(1e-1, 1e-1, 1e-4) == 0.0
    assert gap_fraction(1e-1, 1e-2, 1e-4) == pytest.approx(1 / 3)
    assert gap_fraction(1e-1, 1e-3, 1e-4) == pytest.approx(2 / 3)
    assert gap_fraction(1e-1, 1e-4, 1e-4) == 1.0
    assert gap_fraction(1e-1, 0.0, 1e-4) == 1.0  # an exact solution
    assert gap_fraction(1e-1, 2e-1, 1e-4) == 0.0  # a gap that grew counts as no way yet
    assert gap_fraction(1e-1, 1e-2, 0.0) is None  # tol 0: only max_iter ends it
    assert gap_fraction(None, 1e-2, 1e-4) is None


def test_solve_progress_falls_back_to_iterations_without_a_gap() -> None:
    by_gap = SolveProgress(iteration=10, max_iter=2000, gap=1e-3, first_gap=1e-1, target=1e-5)
    assert by_gap.by_gap and by_gap.fraction == pytest.approx(0.5)
    by_count = SolveProgress(iteration=500, max_iter=2000, gap=None, first_gap=None, target=None)
    assert not by_count.by_gap and by_count.fraction == 0.25


def test_solve_meter_keeps_the_first_gap_of_each_solve() -> None:
    meter = SolveMeter(max_iter=100)
    info = tvd.IterationInfo
    first = meter(info(25, 1.0, 1e-1, None, 0.0, target=1e-4))
    later = meter(info(50, 1.0, 1e-2, None, 0.0, target=1e-4))
    assert first.first_gap == later.first_gap == 1e-1 and later.fraction == pytest.approx(1 / 3)
    # The next tile's solve counts from its own first gap.
    again = meter(info(25, 1.0, 1e-3, None, 0.0, target=1e-4))
    assert again.first_gap == 1e-3 and again.fraction == 0.0
    meter.restart()
    assert meter(info(75, 1.0, 1e-2, None, 0.0, target=1e-4)).first_gap == 1e-2


def test_throttle_passes_stages_and_drops_updates_close_together() -> None:
    sent: list[object] = []
    forward = throttled(sent.append, seconds=60.0)
    updates = [SolveProgress(i, 100, 10.0**-i, 1e-1, 1e-6) for i in range(1, 5)]
    forward(Stage(SOLVING))
    for update in updates:
        forward(update)
    forward(SolveProgress(9, 100, 1e-7, 1e-1, 1e-6))  # at the target: always sent
    forward(Stage(WRITING))
    assert sent == [
        Stage(SOLVING),
        updates[0],
        SolveProgress(9, 100, 1e-7, 1e-1, 1e-6),
        Stage(WRITING),
    ]


def test_events_survive_the_plain_message_form() -> None:
    events = [
        Stage(CHOOSING, "trial 2"),
        SolveProgress(5, 10, 1e-2, 1e-1, 1e-3),
        FrameProgress(3, 9),
    ]
    messages = [to_message(event) for event in events]
    assert all(isinstance(v, (str, int, float, type(None))) for m in messages for v in m)
    assert [from_message(m) for m in messages] == events
    with pytest.raises(TypeError):
        to_message("solving")


def test_tiled_denoise_names_each_tile(camera_crop) -> None:
    from tvdenoise.tiling import denoise_tiled

    _, noisy = camera_crop
    stages: list[Stage] = []
    denoise_tiled(
        noisy[:64, :64].astype(np.float32), tile=40, overlap=8, weight=0.1, on_stage=stages.append
    )
    assert [str(stage) for stage in stages] == [f"solving (tile {k} of 4)" for k in range(1, 5)]
