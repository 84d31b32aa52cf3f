"""Video clips (tvdenoise.io.video, tvdenoise.streaming, the video extra): frame count, size,
frame rate and audio kept; frames and space-time volume modes; broken clips; missing extra.

Clips are made in the test with PyAV itself (small, a few frames); the tests that need it
skip cleanly without it. The missing-extra message is tested either way.
"""

from __future__ import annotations

import json
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tvdenoise.cli import app
from tvdenoise.errors import ImageReadError
from tvdenoise.image_io import ImageStack, decode_stack, encode_stack, load_stack
from tvdenoise.io.atomic import TEMP_NAME_PATTERN
from tvdenoise.streaming import FrameProgress, denoise_clip

runner = CliRunner()


def moving_still(
    frames: int = 12, height: int = 32, width: int = 48, seed: int = 0, speed: int = 1
) -> tuple:
    """A bar pattern sliding ``speed`` pixels a frame: clean and noisy uint8 RGB frames."""
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[:height, :width]
    clean = np.stack(
        [np.where((columns - speed * t) % 16 < 8, 60, 190) + 0 * rows for t in range(frames)]
    ).astype(np.float64)
    noisy = np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255)
    rgb = lambda a: np.repeat(a.astype(np.uint8)[..., None], 3, axis=-1)  # noqa: E731
    return rgb(clean), rgb(noisy)


def write_clip(
    path: Path, frames: np.ndarray, fps: int | Fraction = 24, *, audio: bool = True
) -> Path:
    av = pytest.importorskip("av")
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "4"}
        sound = container.add_stream("aac", rate=22050) if audio else None
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
        if sound is not None:
            seconds = len(frames) / float(fps)
            samples = np.sin(np.arange(int(22050 * seconds)) / 7.0).astype(np.float32)[None]
            chunk = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 22050, 0
            for packet in [*sound.encode(chunk), *sound.encode(None)]:
                container.mux(packet)
    return path


def streams_of(path: Path) -> dict:
    av = pytest.importorskip("av")
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video)]
        return {
            "frames": np.stack(frames),
            "fps": Fraction(video.average_rate),
            "pix_fmt": video.codec_context.pix_fmt,
            "codec": video.codec_context.name,
            "audio": [stream.codec_context.name for stream in container.streams.audio],
        }


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    error = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / error))


def test_clip_round_trips_through_the_table_with_its_rate() -> None:
    pytest.importorskip("av")
    frames = np.full((5, 16, 24, 3), 100, np.uint8)
    frames[:, 4:12, 6:18] = 200
    data = encode_stack(ImageStack(frames, None, "NPY", metadata={"fps": Fraction(30)}), "mp4")
    stack = decode_stack(data, "clip.mp4")
    assert stack.format == "MP4" and stack.pixels.shape == frames.shape
    assert stack.metadata["fps"] == 30
    assert np.abs(stack.pixels.astype(int) - frames).max() <= 3  # lossy H.264: a few levels


def test_volume_beats_frames_on_a_still_scene() -> None:
    # Library level, no encoding: space-time TV averages the noise of neighbouring frames.
    # (On a moving scene the same weight blurs the motion: benchmarks/bench_formats.py.)
    clean, noisy = moving_still(frames=10, speed=0)
    outputs: dict[bool, list[np.ndarray]] = {False: [], True: []}
    for volume in (False, True):
        denoise_clip(iter(noisy), outputs[volume].append, volume=volume, weight=0.08, chunk=6,
                     overlap=2)  # fmt: skip
    frames, volume = np.stack(outputs[False]), np.stack(outputs[True])
    assert frames.shape == volume.shape == noisy.shape
    assert psnr(volume, clean) > psnr(frames, clean)


def test_chunks_blend_into_the_whole_volume_solution() -> None:
    import tvdenoise as tvd

    _, noisy = moving_still(frames=9, height=16, width=16)
    whole = tvd.denoise(noisy.astype(np.float32) / 255, weight=0.08, volume=True, tol=1e-5)
    pieces: list[np.ndarray] = []
    progress: list[FrameProgress] = []
    denoise_clip(
        iter(noisy), pieces.append, volume=True, weight=0.08, tol=1e-5, chunk=5, overlap=2,
        total=9, on_progress=progress.append,
    )  # fmt: skip
    chunked = np.stack(pieces).astype(np.float64) / 255
    # Every frame is written once, in order; the seam error stays within rounding and the
    # blend (a few levels of 255).
    assert [p.frames for p in progress] == list(range(1, 10)) and progress[-1].total == 9
    assert np.abs(chunked - whole).max() < 8 / 255


@pytest.mark.parametrize("mode", ["off", "frames", "volume"])
def test_cli_keeps_frames_size_rate_and_audio(tmp_path: Path, mode: str) -> None:
    clean, noisy = moving_still()
    source = write_clip(tmp_path / "clip.mp4", noisy, Fraction(30000, 1001))
    args = [str(source), "--weight", "0.08", "--json"]
    if mode != "off":
        args += ["--stack", mode]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    line = json.loads(result.stdout.splitlines()[0])
    assert (line["status"], line["frames"], line["audio"]) == ("ok", 12, True)
    written = streams_of(tmp_path / "clip_denoised.mp4")
    assert written["frames"].shape == noisy.shape
    assert written["fps"] == Fraction(30000, 1001)
    assert (written["codec"], written["pix_fmt"], written["audio"]) == ("h264", "yuv420p", ["aac"])
    # Denoised: closer to the clean clip than the noisy input is.
    assert psnr(written["frames"], clean) > psnr(noisy, clean) + 3
    assert not [p for p in tmp_path.iterdir() if TEMP_NAME_PATTERN.match(p.name)]


def test_volume_with_the_automatic_weight_is_allowed_for_clips_only(tmp_path: Path) -> None:
    _, noisy = moving_still(frames=6)
    source = write_clip(tmp_path / "clip.mp4", noisy, audio=False)
    result = runner.invoke(app, [str(source), "--stack", "volume", "--json"])
    assert result.exit_code == 0, result.output
    line = json.loads(result.stdout.splitlines()[0])
    assert line["weight_auto"] and line["frames"] == 6 and line["audio"] is False
    refused = runner.invoke(app, [str(tmp_path / "frames.tif"), "--stack", "volume"])
    assert refused.exit_code == 2 and "needs a numeric --weight" in refused.stderr


def test_broken_clip_fails_alone_and_the_batch_goes_on(tmp_path: Path) -> None:
    _, noisy = moving_still(frames=6)
    good = write_clip(tmp_path / "good.mp4", noisy)
    data = good.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 3])
    (tmp_path / "junk.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\x00" * 200)
    result = runner.invoke(app, [str(tmp_path), "--weight", "0.08", "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 2 and all("cannot decode video" in line for line in errors)
    assert any("cut.mp4" in line for line in errors) and any("junk.mp4" in line for line in errors)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good_denoised.mp4"]


def test_corrupt_clip_is_one_line_naming_the_file() -> None:
    pytest.importorskip("av")
    with pytest.raises(ImageReadError) as error:
        decode_stack(b"\x1a\x45\xdf\xa3" + b"\x42" * 300, "broken.mkv")
    message = str(error.value)
    assert message.startswith("broken.mkv: cannot decode video") and "\n" not in message


def test_odd_sizes_are_written_in_4_4_4(tmp_path: Path) -> None:
    pytest.importorskip("av")
    frames = np.full((3, 15, 21, 3), 128, np.uint8)
    data = encode_stack(frames, "mkv")
    (tmp_path / "odd.mkv").write_bytes(data)
    written = streams_of(tmp_path / "odd.mkv")
    assert written["pix_fmt"] == "yuv444p" and written["frames"].shape == frames.shape
    assert load_stack(tmp_path / "odd.mkv").format == "MKV"


def test_missing_av_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "av", None)  # import fails as if absent
    with pytest.raises(ImageReadError) as error:
        decode_stack(b"\x00\x00\x00\x18ftypisom" + b"\x00" * 64, "clip.mp4")
    assert str(error.value) == (
        "clip.mp4: reading and writing video needs av (pip install 'tvdenoise[video]')"
    )


def test_writer_is_atomic_and_never_replaces_unasked(tmp_path: Path) -> None:
    pytest.importorskip("av")
    from tvdenoise.errors import ImageWriteError
    from tvdenoise.io.video import VideoWriter

    frame = np.full((16, 16, 3), 90, np.uint8)
    target = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError), VideoWriter(target, "MP4", Fraction(25)) as writer:
        writer.write(frame)
        raise RuntimeError("stopped half way")  # an interrupted job: nothing is left
    assert list(tmp_path.iterdir()) == []
    target.write_bytes(b"precious")
    with pytest.raises(ImageWriteError, match="exists"):
        VideoWriter(target, "MP4", Fraction(25))
    with VideoWriter(target, "MP4", Fraction(25), overwrite=True) as writer:
        writer.write(frame)
        writer.finish()
    assert target.read_bytes()[4:8] == b"ftyp"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


def test_skip_existing_claims_a_clip_and_leaves_no_claim(tmp_path: Path) -> None:
    # Under --skip-existing a clip's output is claimed as an image's is (tvdenoise.io.claims):
    # a clip another live run holds is skipped, and the claim goes with the run.
    from tvdenoise.batch import process_job
    from tvdenoise.io import claims
    from tvdenoise.planning import Job
    from tvdenoise.settings import RunSettings

    _, noisy = moving_still(frames=4)
    source = write_clip(tmp_path / "clip.mp4", noisy, audio=False)
    result = runner.invoke(app, [str(source), "--weight", "0.08", "--skip-existing"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "clip_denoised.mp4"]
    target = tmp_path / "other.mp4"
    held = claims.take(target)
    try:
        job = Job(source=source, target=target)
        settings = RunSettings.of(weight=0.08, skip_existing=True)
        skipped = process_job(job, settings)
    finally:
        claims.release(held)
    assert skipped.status == "skipped" and not target.exists()


def test_batch_size_streams_same_size_clips_whole(tmp_path: Path) -> None:
    # Same-size clips are not batched as single frames: each streams all its frames.
    _, noisy = moving_still(frames=5)
    for name in ("a", "b"):
        write_clip(tmp_path / f"{name}.mp4", noisy, audio=False)
    args = [str(tmp_path / "a.mp4"), str(tmp_path / "b.mp4"), "--weight", "0.08"]
    result = runner.invoke(app, [*args, "--batch-size", "2", "--json", "-o", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()[:2]]
    assert [line["frames"] for line in lines] == [5, 5]
    for name in ("a", "b"):
        assert streams_of(tmp_path / "o" / f"{name}_denoised.mp4")["frames"].shape == noisy.shape


def test_max_memory_sets_the_chunk_of_a_clip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tvdenoise.streaming as streaming
    from tvdenoise.batch import process_job
    from tvdenoise.planning import Job
    from tvdenoise.settings import RunSettings

    asked: list[tuple] = []

    def chunk_for(*args: int) -> tuple[int, int]:
        asked.append(args)
        return 4, 1

    monkeypatch.setattr(streaming, "chunk_for", chunk_for)
    _, noisy = moving_still(frames=6, height=16, width=16)
    source = write_clip(tmp_path / "clip.mp4", noisy, audio=False)
    settings = RunSettings.of(weight=0.08, stack="volume", max_memory="64MiB")
    result = process_job(Job(source=source, target=tmp_path / "out.mp4"), settings)
    assert result.status == "ok" and result.record["frames"] == 6, result.error
    assert asked == [(16, 16, 3, 64 * 2**20)]


@pytest.mark.parametrize("mode", ["frames", "volume"])
def test_mask_image_applies_to_every_frame_of_a_clip(tmp_path: Path, mode: str) -> None:
    # A blemish (a bright 6x6 square) on every frame of a flat clip, masked out: the data
    # term ignores it, so TV fills it from its surroundings; without the mask it stays bright.
    from PIL import Image

    frames = np.full((6, 32, 48, 3), 90, np.uint8)
    frames[:, 13:19, 21:27] = 230
    source = write_clip(tmp_path / "clip.mp4", frames, audio=False)
    mask = np.full((32, 48), 255, np.uint8)
    mask[12:20, 20:28] = 0
    Image.fromarray(mask).save(tmp_path / "mask.png")
    outputs = {}
    for masked in (False, True):
        target = tmp_path / f"out_{masked}.mp4"
        args = [str(source), "-o", str(target), "--weight", "0.05", "--stack", mode, "--json"]
        if masked:
            args += ["--mask", str(tmp_path / "mask.png")]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout.splitlines()[0])["frames"] == 6
        outputs[masked] = streams_of(target)["frames"].astype(float)
    centre = (slice(None), slice(14, 18), slice(22, 26))
    assert outputs[False][centre].mean() > 180  # the blemish is kept as data
    assert abs(outputs[True][centre].mean() - 90) < 15  # filled from the flat surroundings
    outside = (slice(None), slice(0, 8), slice(0, 12))
    assert np.abs(outputs[True][outside] - outputs[False][outside]).max() <= 4


def test_reports_record_a_clip_with_its_frames_rate_and_audio(tmp_path: Path) -> None:
    # JSON (validated against the schema), CSV and HTML reports of a run with a clip and an
    # image: the clip's record carries its frame count, rate and audio; the image's has none.
    import csv

    from PIL import Image

    from tvdenoise.report import report_schema

    _, noisy = moving_still(frames=5)
    write_clip(tmp_path / "clip.mp4", noisy, Fraction(25))
    Image.fromarray(noisy[0]).save(tmp_path / "still.png")
    reports = [tmp_path / "run.json", tmp_path / "run.csv", tmp_path / "run.html"]
    args = [str(tmp_path / "clip.mp4"), str(tmp_path / "still.png"), "-o", str(tmp_path / "out")]
    args += ["--weight", "0.08", "-q"]
    for report in reports:
        args += ["--report", str(report)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(reports[0].read_text())
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator(report_schema()).validate(data)
    records = {Path(r["input"]).name: r for r in data["images"]}
    clip, still = records["clip.mp4"], records["still.png"]
    assert (clip["frames"], clip["fps"], clip["audio"]) == (5, 25.0, True)
    assert (still["frames"], still["fps"], still["audio"]) == (None, None, None)
    rows = {Path(r["input"]).name: r for r in csv.DictReader(reports[1].open())}
    assert rows["clip.mp4"]["frames"] == "5" and rows["still.png"]["frames"] == ""
    page = reports[2].read_text()
    assert "Video clip: 5 frames at 25 frames/s, audio copied" in page
