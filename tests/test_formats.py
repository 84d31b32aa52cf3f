"""The format table (tvdenoise.io.formats) drives the readers, writers, config and CLI."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from tvdenoise import config, image_io, planning
from tvdenoise.cli import app
from tvdenoise.errors import ImageWriteError
from tvdenoise.io import formats


@pytest.mark.parametrize("spec", formats.FORMATS, ids=lambda spec: spec.name)
def test_every_row_is_written_read_and_recognised(spec: formats.FormatSpec) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    data = image_io.encode_image(pixels, spec.option)
    assert formats.sniff(data) is spec
    assert image_io.decode_image(data).format == spec.name
    for extension in spec.extensions:
        assert image_io.output_format_for(f"x{extension.upper()}") == spec.name
    for alias in spec.aliases:
        assert formats.by_option(alias) is spec


def test_config_planning_and_help_list_the_table() -> None:
    images = ("png", "jpeg", "tiff", "bmp", "webp", "gif", "npy")
    assert (*images, "fits", "mp4", "mkv", "webm") == config.FORMATS
    assert config.FORMAT_ALIASES == {
        "jpg": "jpeg",
        "tif": "tiff",
        "fit": "fits",
        "mov": "mp4",
        "m4v": "mp4",
    }
    assert planning.FORMAT_EXTENSIONS["jpeg"] == ".jpg"
    expected = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif", ".npy"}
    expected |= {".fits", ".fit", ".fts", ".mp4", ".m4v", ".mov", ".mkv", ".webm"}
    assert expected == image_io.SUPPORTED_EXTENSIONS
    help_text = " ".join(CliRunner().invoke(app, ["--help"]).stdout.split())
    assert "--format [png|jpeg|tiff|bmp|webp|gif|npy|fits|mp4|mkv|webm]" in help_text
    assert formats.sniff(b"not an image") is None


def test_capabilities_match_what_the_writers_do() -> None:
    stack = np.zeros((2, 4, 5), dtype=np.float32)
    for spec in formats.FORMATS:
        if spec.multi_page:
            assert image_io.encode_stack(stack, spec.option)
        else:
            with pytest.raises(ImageWriteError, match="holds one image"):
                image_io.encode_stack(stack, spec.option)
        kept = image_io.decode_image(image_io.encode_image(stack[0] + 0.3, spec.option))
        assert (kept.pixels.dtype == np.float32) == spec.any_dtype


def test_the_table_imports_no_numpy() -> None:
    code = "import sys, tvdenoise.io.formats; assert 'numpy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
