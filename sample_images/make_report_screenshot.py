"""Make the README's screenshot of an HTML report: the sample images, denoised, against the
clean originals, rendered by headless Chromium.

It denoises every ``*_noisy_sigma25.png`` here with ``tvdenoise.denoise`` at weight 0.1 (the
default model otherwise, the settings the report lists), writes
``run.json``, ``run.csv`` and ``run.html`` (pictures for every image, PSNR and SSIM against the
clean ``<name>.png``) into OUTPUT_DIR, screenshots the top of the HTML page with
``chromium --headless``, and saves it, reduced to a 256-colour palette so it stays under
300 KB, as ``report_screenshot.png`` next to this script.

Usage::

    python sample_images/make_report_screenshot.py OUTPUT_DIR

Needs Chromium (Debian: ``apt-get install chromium``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import tvdenoise as tvd
from tvdenoise.image_io import load_image, to_float
from tvdenoise.report import (
    RunReport,
    image_record,
    make_pictures,
    reference_metrics,
    write_report,
)

HERE = Path(__file__).resolve().parent
WINDOW = (1280, 1450)  # width, height of the browser window, in CSS pixels


def main(output: Path) -> None:
    torch.set_num_threads(2)
    output.mkdir(parents=True, exist_ok=True)
    settings = {
        "weight": 0.1,
        "beta": 1.0,
        "tv": "symmetric",
        "color": "vectorial",
        "fidelity": "l2",
        "solver": "auto",
        "device": "cpu",
    }
    # The command that really made the report: the command line's --report cannot match the
    # clean originals (astronaut.png) to the noisy names (astronaut_noisy_sigma25.png).
    run = RunReport(command=["python", *sys.argv], settings=settings)
    # Warm up first, so the first image's seconds do not include torch's one-off start-up.
    tvd.denoise(np.zeros((16, 16)), weight=0.1)
    records = []
    for path in sorted(HERE.glob("*_noisy_sigma25.png")):
        image = load_image(path)
        noisy = to_float(image.pixels)
        start = time.perf_counter()
        denoised, solve = tvd.denoise(noisy, **settings, return_record=True)
        seconds = time.perf_counter() - start
        clean = to_float(load_image(path.with_name(path.name.replace("_noisy_sigma25", ""))).pixels)
        record = image_record(
            path.relative_to(HERE.parent),
            output / f"{path.stem}_denoised.png",
            image,
            solve,
            settings,
            seconds=seconds,
            metrics=reference_metrics(noisy, denoised, clean),
        )
        record.pictures = make_pictures(noisy, denoised)
        records.append(record)
    for suffix in ("json", "csv", "html"):
        written = write_report(output / f"run.{suffix}", run, records)
        print(f"{written}: {written.stat().st_size} bytes")

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("chromium is not installed")
    shot = output / "screenshot_full.png"
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--screenshot={shot}",
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            (output / "run.html").as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    target = HERE / "report_screenshot.png"
    Image.open(shot).convert("RGB").quantize(colors=256, dither=Image.Dither.NONE).save(
        target, optimize=True
    )
    print(f"{target}: {target.stat().st_size} bytes")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
