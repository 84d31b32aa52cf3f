"""denoise(progress=True): a tqdm bar for notebooks, off by default, same result."""

from __future__ import annotations

import numpy as np
import pytest

import tvdenoise as tvd


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
