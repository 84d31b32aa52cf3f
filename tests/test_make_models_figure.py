"""The README's model pictures: the script runs, writes its strips, and shows what they claim."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("skimage")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import make_models_figure as figure


def test_tgv_strip_beats_tv_on_affine_faces(tmp_path) -> None:
    path = tmp_path / "tgv.png"
    rows = figure.tgv_figure(path, size=48)
    # Five panels of 48 px enlarged twice, four gaps between them.
    assert Image.open(path).size == (5 * 48 * figure.ZOOM + 4 * figure.GAP, 48 * figure.ZOOM)
    (tv, _, tv_psnr), (tgv, _, tgv_psnr) = rows
    assert (tv, tgv) == ("symmetric", "tgv")
    # TGV of an affine face is 0, so on a pyramid of affine faces it must beat TV clearly.
    assert tgv_psnr > tv_psnr + 3.0


def test_nonlocal_strip(tmp_path) -> None:
    path = tmp_path / "nonlocal.png"
    rows = figure.nonlocal_figure(path, size=48)
    assert Image.open(path).size == (3 * 48 * figure.ZOOM + 2 * figure.GAP, 48 * figure.ZOOM)
    assert [tv for tv, _, _ in rows] == ["symmetric", "nonlocal"]
    # Both denoise: each result is above the noisy image's PSNR (sigma 25/255: 20.17 dB).
    assert all(value > 21.0 for _, _, value in rows)
