"""Shared by the benchmark scripts: the test images of PROTOCOL.md, "Images", with their
noise (PROTOCOL.md, "Noise"), and the marked section of benchmarks/RESULTS.md that each
script owns."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).with_name("RESULTS.md")
ROOT = Path(__file__).resolve().parents[1]
#: PROTOCOL.md's images in their protocol order (the noise seed is 1234 + position).
PROTOCOL_IMAGES = (
    "camera",
    "moon",
    "coins",
    "brick",
    "grass",
    "astronaut",
    "coffee",
    "chelsea",
    "immunohistochemistry",
    "rocket",
)


def noisy_image(name: str, sigma: float = 25.0) -> np.ndarray:
    """A scikit-image test image as float64 in [0, 1] plus its protocol noise of ``sigma``
    (of 255), unclipped: ``clean + sigma / 255 * default_rng(1234 + i).standard_normal``."""
    from skimage import data, img_as_float

    clean = img_as_float(getattr(data, name)())
    z = np.random.default_rng(1234 + PROTOCOL_IMAGES.index(name)).standard_normal(clean.shape)
    return clean + sigma / 255 * z


def central_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The central ``size`` x ``size`` window of an image (all channels)."""
    h, w = image.shape[:2]
    top, left = max((h - size) // 2, 0), max((w - size) // 2, 0)
    return image[top : top + size, left : left + size]


def write_section(section: str, text: str | list[str], path: Path = RESULTS) -> None:
    """Replace the block ``<!-- BEGIN section -->`` ... ``<!-- END section -->`` of ``path``
    with ``text`` (lines or one string), appending it when missing; other blocks are kept."""
    body = "\n".join(text) if isinstance(text, list) else text.rstrip("\n")
    begin, end = f"<!-- BEGIN {section} -->", f"<!-- END {section} -->"
    block = f"{begin}\n{body}\n{end}"
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        new = head + block + rest.split(end, 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(new)


def commit() -> str:
    """The checkout's short commit, "?" outside a git checkout: every section names it."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
        )
    except OSError:
        return "?"
    return done.stdout.strip() or "?"
