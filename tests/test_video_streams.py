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


# --------------------------------------------------------------------------------------------
# Frames and chunks larger than the memory budget
# --------------------------------------------------------------------------------------------


def textured_frames(
    frames: int = 4, height: int = 288, width: int = 320, channels: int = 3
) -> np.ndarray:
    """Float32 frames in [0, 1]: a slowly moving pattern of bars and waves with noise."""
    rng = np.random.default_rng(7)
    rows, columns = np.mgrid[:height, :width].astype(np.float64)
    clips = []
    for t in range(frames):
        clean = 0.35 + 0.3 * ((columns - 2 * t) % 40 < 20) + 0.2 * np.sin(rows / 23.0)
        clips.append(clean + rng.normal(0, 0.08, clean.shape))
    grey = np.clip(np.stack(clips), 0, 1).astype(np.float32)
    return np.repeat(grey[..., None], channels, axis=-1) if channels > 1 else grey


@pytest.mark.parametrize("volume", [False, True])
def test_tiled_frames_and_chunks_match_the_whole_solve(
    volume: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Solved in tiles of 256 (overlap 64, the default), frames and space-time chunks agree
    # with the whole solve to the tiling error the README states for weight 0.1 (below
    # 1e-3), and no single solve is larger than a tile (every frame of the chunk deep).
    import tvdenoise.denoising as denoising
    from tvdenoise.streaming import denoise_clip

    frames = textured_frames(frames=4 if volume else 2, channels=1)  # one chunk, or 2 frames
    solved: list[tuple[int, ...]] = []
    original = denoising.denoise

    def spy(image: np.ndarray, **options: object) -> object:
        solved.append(tuple(np.shape(image)))
        return original(image, **options)

    outputs = {}
    for tile in (None, 256):
        pieces: list[np.ndarray] = []
        monkeypatch.setattr(denoising, "denoise", spy)
        solved.clear()
        denoise_clip(
            iter(frames), pieces.append, volume=volume, weight=0.1, tol=1e-5, chunk=4, overlap=1,
            tile=tile, tile_overlap=64,
        )  # fmt: skip
        outputs[tile] = np.stack(pieces)
        sizes = {shape[1:3] if volume else shape[:2] for shape in solved}
        if tile is None:
            assert sizes == {(288, 320)}
        else:
            assert sizes and all(max(size) <= 256 for size in sizes)
            assert all(shape[0] == 4 for shape in solved) if volume else len(solved) == 8
    assert outputs[256].shape == outputs[None].shape == frames.shape
    difference = np.abs(outputs[256] - outputs[None])
    assert difference.max() < 1e-3
    assert difference.mean() > 0  # tiled for real: the cut moved something


def test_space_time_tiles_keep_a_chunk_within_the_budget() -> None:
    from tvdenoise.streaming import BYTES_PER_VALUE, CHUNK_BYTES_PER_VALUE, space_time_tile

    budget = 2 * 2**30
    for height, width in ((2160, 3840), (4320, 7680), (1080, 1920)):
        tile = space_time_tile(height, width, 3, 4, budget, 64)
        assert tile is not None and tile % 64 == 0
        held = CHUNK_BYTES_PER_VALUE * 4 * height * width * 3 + BYTES_PER_VALUE * 4 * tile**2 * 3
        assert held <= budget or tile == 256  # the smallest tile may exceed a tiny budget
    assert space_time_tile(240, 320, 3, 16, budget, 64) is None


@pytest.mark.parametrize("mode", ["frames", "volume"])
def test_max_memory_tiles_the_frames_of_a_clip(tmp_path: Path, mode: str) -> None:
    # --max-memory too small for a 288x320 frame (or a chunk): the clip is tiled, the --json
    # line says the tile, and the output is the untiled one to rounding (lossless H.264).
    # Four frames are one chunk at either budget (4 frames is the shortest chunk), so only
    # the tiling differs.
    frames = (textured_frames() * 255).round().astype(np.uint8)
    source = write_clip(tmp_path / "clip.mp4", frames, audio=False)
    outputs = {}
    for budget in (None, "6MiB"):
        target = tmp_path / f"out_{budget}.mp4"
        args = [str(source), "-o", str(target), "--weight", "0.1", "--stack", mode]
        args += ["--quality", "100", "--tol", "1e-5", "--json"]
        if budget is not None:
            args += ["--max-memory", budget]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        line = json.loads(result.stdout.splitlines()[0])
        assert line["frames"] == 4 and line.get("tile") == (None if budget is None else 256)
        outputs[budget] = streams_of(target)["frames"].astype(float)
    difference = np.abs(outputs["6MiB"] - outputs[None])
    assert difference.max() <= 2 and difference.mean() < 0.05
