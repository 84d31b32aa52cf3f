"""Video clips beyond the plain file: clips piped through stdin (spooled to a file, then
streamed), rotated phone clips, variable frame rates, and frames too large for the memory
budget (tiled as still images are).

Clips are made with PyAV in the test (tests/test_video.py's helpers); every test here skips
cleanly without it.
"""

from __future__ import annotations

import io
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from test_video import moving_still, psnr, streams_of, write_clip
from typer.testing import CliRunner

from tvdenoise.cli import app
from tvdenoise.io.atomic import TEMP_NAME_PATTERN

runner = CliRunner()


# --------------------------------------------------------------------------------------------
# stdin
# --------------------------------------------------------------------------------------------


def test_a_clip_on_stdin_streams_every_frame_from_a_spooled_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `cat clip.mp4 | tvdenoise - -o out.mp4`: every frame is denoised (not only the first),
    # the rate and audio are kept, and the clip is decoded from a file copy of stdin (which
    # PyAV streams), not from bytes held in memory; the copy is gone afterwards.
    import tvdenoise.io.video as video

    clean, noisy = moving_still()
    data = write_clip(tmp_path / "clip.mp4", noisy, Fraction(30000, 1001)).read_bytes()
    (tmp_path / "clip.mp4").unlink()
    opened: list[object] = []
    original = video.VideoReader.__init__

    def spy(self: object, source: object, *args: object, **kwargs: object) -> None:
        opened.append(source)
        original(self, source, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(video.VideoReader, "__init__", spy)
    target = tmp_path / "out.mp4"
    args = ["-", "--format", "mp4", "-o", str(target), "--weight", "0.08", "--json"]
    result = runner.invoke(app, args, input=data)
    assert result.exit_code == 0, result.output
    line = json.loads(result.stdout.splitlines()[0])
    assert (line["input"], line["status"], line["frames"], line["audio"]) == ("-", "ok", 12, True)
    written = streams_of(target)
    assert written["frames"].shape == noisy.shape
    assert written["fps"] == Fraction(30000, 1001) and written["audio"] == ["aac"]
    assert psnr(written["frames"], clean) > psnr(noisy, clean) + 3
    # The clip was read from a hidden file beside the output, removed after the run.
    assert [type(source) for source in opened] == [type(target)]
    spooled = Path(opened[0])  # type: ignore[arg-type]
    assert spooled.parent == tmp_path and TEMP_NAME_PATTERN.match(spooled.name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


def test_a_clip_from_stdin_to_stdout_keeps_every_frame(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # stdin to stdout: spooled in $TMPDIR, encoded in a temporary folder, sent whole; no
    # file is left in $TMPDIR.
    import tempfile

    spool = tmp_path / "tmp"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    _, noisy = moving_still(frames=7)
    data = write_clip(tmp_path / "clip.mkv", noisy, audio=False).read_bytes()
    result = runner.invoke(app, ["-", "-o", "-", "--weight", "0.08", "-q"], input=data)
    assert result.exit_code == 0, result.stderr
    (tmp_path / "back.mkv").write_bytes(result.stdout_bytes)
    assert streams_of(tmp_path / "back.mkv")["frames"].shape == noisy.shape
    assert list(spool.iterdir()) == []


def test_a_clip_from_stdin_to_an_image_is_its_first_frame(tmp_path: Path) -> None:
    # Converting (not streaming): a clip read from stdin to a PNG is its first frame, as a
    # clip file named on the command line is.
    from PIL import Image

    _, noisy = moving_still(frames=4)
    data = write_clip(tmp_path / "clip.mp4", noisy, audio=False).read_bytes()
    target = tmp_path / "first.png"
    result = runner.invoke(app, ["-", "-o", str(target), "--weight", "0.02", "-q"], input=data)
    assert result.exit_code == 0, result.stderr
    first = np.asarray(Image.open(target))
    assert first.shape == noisy.shape[1:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "first.png"]


def test_spool_clip_reads_images_whole_and_copies_clips() -> None:
    from tvdenoise.io.video import spool_clip

    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 10
    assert spool_clip(io.BytesIO(png), None, "x.png") == png
    pytest.importorskip("av")
    clip = b"\x1a\x45\xdf\xa3" + bytes(range(256)) * 9000  # Matroska's magic, 2.3 MB
    path = spool_clip(io.BytesIO(clip), None, "out.mkv")
    try:
        assert isinstance(path, Path) and path.read_bytes() == clip
    finally:
        path.unlink()  # type: ignore[union-attr]


def test_a_spool_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    from tvdenoise.errors import ImageReadError
    from tvdenoise.io.video import spool_clip

    with pytest.raises(ImageReadError) as error:
        spool_clip(io.BytesIO(b"\x1a\x45\xdf\xa3" + b"\x00" * 100), tmp_path / "gone", "o.mkv")
    message = str(error.value)
    assert message.startswith("<stdin>: cannot copy the clip to ") and "\n" not in message
