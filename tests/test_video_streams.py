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


# --------------------------------------------------------------------------------------------
# Rotation and timing
# --------------------------------------------------------------------------------------------


def write_timed_clip(
    path: Path,
    frames: np.ndarray,
    times_ms: list[int],
    *,
    rotation: int = 0,
) -> Path:
    """A clip whose frames are shown at ``times_ms`` (a variable rate: the container's time
    base is 1 ms and the encoder's clock too), with a display matrix rotating it
    ``rotation`` degrees counter-clockwise (what PyAV's ``set_display_rotation`` writes and
    ``VideoFrame.rotation`` reads)."""
    av = pytest.importorskip("av")
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "4"}
        stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            stream.set_display_rotation(rotation)
        for pixels, time in zip(frames, times_ms, strict=True):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = time, Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def shown(path: Path) -> tuple[np.ndarray, list[float], list[int]]:
    """A clip's frames as stored, their times in seconds, and their display rotations."""
    av = pytest.importorskip("av")
    with av.open(str(path)) as container:
        decoded = list(container.decode(container.streams.video[0]))
        return (
            np.stack([frame.to_ndarray(format="rgb24") for frame in decoded]),
            [float(frame.time) for frame in decoded],
            [int(getattr(frame, "rotation", 0) or 0) for frame in decoded],
        )


def marked_frames(count: int = 4, height: int = 32, width: int = 48) -> np.ndarray:
    """Grey frames with a white 8x16 block in the top-left corner."""
    frames = np.full((count, height, width, 3), 60, np.uint8)
    frames[:, :8, :16] = 240
    return frames


@pytest.mark.parametrize(
    ("rotation", "corner"),
    # Where a player shows the stored top-left block: ffmpeg 5.1's autorotation (`ffmpeg -i
    # clip.mp4 -f rawvideo ...`) shows a clip with rotation 90 (counter-clockwise) with it
    # bottom-left, and -90 (a phone filmed upright) top-right.
    [(90, "bottom-left"), (-90, "top-right"), (180, "bottom-right")],
)
def test_a_rotated_clip_is_written_upright_as_players_show_it(
    tmp_path: Path, rotation: int, corner: str
) -> None:
    frames = marked_frames()
    source = write_timed_clip(tmp_path / "phone.mp4", frames, [0, 40, 80, 120], rotation=rotation)
    target = tmp_path / "out.mp4"
    result = runner.invoke(app, [str(source), "-o", str(target), "--weight", "0.02", "-q"])
    assert result.exit_code == 0, result.stderr
    pixels, _, rotations = shown(target)
    turned = rotation % 180 != 0
    assert pixels.shape == ((4, 48, 32, 3) if turned else (4, 32, 48, 3))
    assert rotations == [0] * 4  # stored upright: no player needs to turn it
    bright = pixels[..., 0] > 150
    rows, columns = np.nonzero(bright.all(axis=0))
    height, width = pixels.shape[1:3]
    if corner.startswith("top"):
        assert rows.min() == 0 and rows.max() < height // 2
    else:
        assert rows.max() == height - 1 and rows.min() >= height // 2
    if corner.endswith("left"):
        assert columns.min() == 0 and columns.max() < width // 2
    else:
        assert columns.max() == width - 1 and columns.min() >= width // 2
    # The block keeps its size, turned: 16 wide and 8 high become 8 wide and 16 high.
    block = (16, 8) if turned else (8, 16)
    assert (rows.max() - rows.min() + 1, columns.max() - columns.min() + 1) == block


@pytest.mark.parametrize(("extension", "mode"), [("mp4", "frames"), ("mkv", "volume")])
def test_variable_frame_times_are_kept(tmp_path: Path, extension: str, mode: str) -> None:
    # Gaps of 40, 120, 160 and 10 ms: every frame is shown at its input time (to the output
    # time base's tick; MP4 counts 1/16000 s here), in frame mode and through overlapping
    # space-time chunks alike.
    times = [0, 40, 80, 200, 240, 400, 410, 420, 460, 500]
    _, noisy = moving_still(frames=len(times))
    source = write_timed_clip(tmp_path / "vfr.mkv", noisy, times)
    _, input_times, _ = shown(source)
    assert input_times == pytest.approx([t / 1000 for t in times])  # the fixture is VFR
    target = tmp_path / f"out.{extension}"
    args = [str(source), "-o", str(target), "--weight", "0.08", "--stack", mode, "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[0])["frames"] == len(times)
    pixels, output_times, _ = shown(target)
    assert pixels.shape == noisy.shape
    assert output_times == pytest.approx([t / 1000 for t in times], abs=1e-4)


def test_constant_rate_clips_keep_their_exact_times(tmp_path: Path) -> None:
    # A 30000/1001 clip (NTSC): frame k at k * 1001/30000 s, as before.
    _, noisy = moving_still(frames=8)
    source = write_clip(tmp_path / "ntsc.mp4", noisy, Fraction(30000, 1001), audio=False)
    target = tmp_path / "out.mp4"
    result = runner.invoke(app, [str(source), "-o", str(target), "--weight", "0.08", "-q"])
    assert result.exit_code == 0, result.stderr
    _, times, _ = shown(target)
    assert times == pytest.approx([k * 1001 / 30000 for k in range(8)], abs=1e-4)
    assert streams_of(target)["fps"] == Fraction(30000, 1001)
