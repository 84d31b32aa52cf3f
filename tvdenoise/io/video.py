"""Video clips on PyAV (FFmpeg; the optional extra ``tvdenoise[video]``): MP4/MOV, MKV, WebM.

A clip is a stack of 8-bit RGB frames. Whole clips go through the table's interface
(``decode_pages``/``encode``, for the library and small clips); the command line streams them
instead, a chunk of frames at a time (:class:`VideoReader`, :class:`VideoWriter`), so memory
does not grow with the clip's length.

What is written (documented in the README):

- MP4, MOV and MKV: H.264 (libx264, preset ``medium``); WebM: VP9 (libvpx-vp9). Quality is
  a constant rate factor: ``quality`` 1-100 maps to CRF ``round((100 - quality) * 0.51)``
  for H.264 (0-51; 100 is lossless) and ``round((100 - quality) * 0.63)`` for VP9 (0-63);
  without one, CRF 18 for H.264 (visually lossless for most material) and 31 for VP9.
- Pixel format ``yuv420p`` (plays everywhere) when width and height are even, else
  ``yuv444p`` (4:2:0 needs even sizes; some players refuse 4:4:4).
- The input's frame count, size and timing: each frame keeps its presentation time (pts,
  in the input stream's time base), so a variable-rate clip stays variable, and audio
  copied from the input stays in step. (The table's whole-clip ``encode`` times frames
  one after the other at ``metadata["fps"]``.)
- Audio is copied packet for packet (no re-encoding) where the input has it and the output
  container can hold its codec (AAC, MP3, Opus, ... in MP4/MKV; Opus and Vorbis in WebM);
  otherwise it is left out and ``VideoWriter.audio_dropped`` says why.

Rotation metadata (a phone clip's display matrix, what ``ffprobe`` shows as
``rotation``) is applied when reading, by the nearest quarter turn: frames are read upright,
as a player shows them, and written upright with no rotation, so the output looks the same
in every player (flips in a display matrix are not applied).
"""

from __future__ import annotations

import collections
import contextlib
import heapq
import io
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from tvdenoise.errors import ImageReadError, ImageWriteError
from tvdenoise.io import atomic, formats
from tvdenoise.io.common import Decoded, Stacked, one_line, require
from tvdenoise.io.limits import check_size

__all__ = [
    "DEFAULT_FPS",
    "VideoInfo",
    "VideoReader",
    "VideoWriter",
    "crf_for",
    "decode",
    "decode_pages",
    "encode",
    "is_video",
    "spool_clip",
]

#: The frame rate of a clip made from a stack that names none (TIFF pages, .npy arrays).
DEFAULT_FPS = Fraction(25)
#: FFmpeg's muxer and encoder for each format row.
_CONTAINERS = {
    "MP4": ("mp4", "libx264"),
    "MKV": ("matroska", "libx264"),
    "WEBM": ("webm", "libvpx-vp9"),
}
_CRF_SCALE = {"libx264": (0.51, 18), "libvpx-vp9": (0.63, 31)}


def is_video(image_format: str) -> bool:
    """Whether the row ``image_format`` is a video container this module writes."""
    return image_format in _CONTAINERS


#: The bytes of a stream read to sniff its format, and the piece copied at a time when spooling.
_HEAD = 64
_PIECE = 1 << 20


def spool_clip(stream: BinaryIO, folder: Path | None, name: str) -> bytes | Path:
    """Read ``stream`` (stdin) whole, or, when it starts as a video clip, copy it to a
    temporary file and return that file's path, so that the clip streams from the file a
    chunk of frames at a time instead of being held in memory (PyAV cannot stream an MP4
    from a pipe: its index may come last). The file is created in ``folder`` (beside the
    output, hidden and named as :func:`tvdenoise.io.atomic.temporary_name` names it for
    ``name``, so a killed run's spool is cleaned as its other temporaries are) or, for None,
    in the system's temporary folder (``$TMPDIR``); the caller removes it. Memory stays at one
    piece of :data:`_PIECE` bytes whatever the clip's length.

    Raises
    ------
    ImageReadError
        When the temporary file cannot be written (disk full, no permission).
    """
    head = stream.read(_HEAD)
    spec = formats.sniff(head)
    if spec is None or not is_video(spec.name):
        return head + stream.read()
    import tempfile

    where = Path(tempfile.gettempdir()) if folder is None else folder
    try:
        if folder is None:
            descriptor, text = tempfile.mkstemp(prefix="tvdenoise-stdin-", suffix=".tmp")
            path = Path(text)
        else:
            path = folder / atomic.temporary_name(Path(name))
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as error:
        raise ImageReadError(
            f"<stdin>: cannot copy the clip to {where} ({one_line(error)})"
        ) from None
    try:
        with os.fdopen(descriptor, "wb") as spool:
            spool.write(head)
            while piece := stream.read(_PIECE):
                spool.write(piece)
    except BaseException as error:
        with contextlib.suppress(OSError):
            path.unlink()
        if isinstance(error, OSError):
            raise ImageReadError(
                f"<stdin>: cannot copy the clip to {where} ({one_line(error)})"
            ) from None
        raise
    return path


def _av(name: str, error: type[Exception]) -> Any:
    return require("av", "video", f"{name}: reading and writing video", error)


def crf_for(encoder: str, quality: int | None) -> int:
    """The constant rate factor for ``quality`` (1-100, None for the default)."""
    scale, default = _CRF_SCALE[encoder]
    return default if quality is None else round((100 - quality) * scale)


@dataclass(frozen=True)
class VideoInfo:
    """What a clip is: frame size as displayed (after ``rotation``), average rate and count
    (0 when the container does not say), whether it has audio, the codec of its video
    stream, and the rotation its display matrix asks for (degrees counter-clockwise, a
    multiple of 90; the frames are read turned by it)."""

    width: int
    height: int
    fps: Fraction
    frames: int
    audio: bool
    codec: str
    rotation: int = 0


class VideoReader:
    """Decode a clip's frames one at a time as ``uint8`` RGB ``(H, W, 3)`` arrays, upright.

    A clip whose display matrix rotates it (phone clips filmed upright) is read turned as a
    player shows it, by the nearest multiple of 90 degrees (flips in the matrix are not
    applied); ``info`` gives the turned size. Each frame's presentation time (``pts`` in
    ``time_base``) is appended to :attr:`timestamps` as the frame is yielded, for a writer
    that keeps the clip's timing (variable frame rates included).

    Parameters
    ----------
    source : str, os.PathLike or bytes
        The clip (a path, or its bytes).
    name : str
        What to call it in error messages.
    max_pixels : int or None
        Refuse frames larger than this (a frame, not the clip: a clip is streamed).

    Raises
    ------
    ImageReadError
        For a file that is not a clip, has no video stream, or breaks while decoding
        (truncated, corrupt), with one line starting with ``name``.
    """

    def __init__(
        self, source: str | os.PathLike[str] | bytes, name: str, max_pixels: int | None = None
    ) -> None:
        av = _av(name, ImageReadError)
        self.name = name
        opened: Any = io.BytesIO(source) if isinstance(source, bytes) else os.fspath(source)
        try:
            self._container = av.open(opened, "r")
        except Exception as error:
            raise ImageReadError(
                f"{name}: cannot decode video (truncated or corrupt: {_reason(error)})"
            ) from None
        self.count = 0
        #: Presentation times of the frames yielded so far and not yet taken by a writer.
        self.timestamps: collections.deque[int | None] = collections.deque()
        try:
            streams = self._container.streams
            if not streams.video:
                raise ImageReadError(f"{name}: no video stream")
            self._stream = streams.video[0]
            self.time_base = Fraction(self._stream.time_base or Fraction(1, 90000))
            context = self._stream.codec_context
            rate = self._stream.average_rate or self._stream.guessed_rate or DEFAULT_FPS
            width, height = int(context.width), int(context.height)
            if width < 1 or height < 1:
                raise ImageReadError(f"{name}: cannot decode video (no frame size)")
            check_size(name, (height, width), max_pixels)
            # The rotation is a frame's side data: decode the first frame to learn it.
            self._frames = self._container.decode(self._stream)
            self._first = self._decode_next()
            turns = 0 if self._first is None else _quarter_turns(self._first)
            if turns % 2:
                width, height = height, width
            self._turns = turns
            self.info = VideoInfo(
                width=width,
                height=height,
                fps=Fraction(rate),
                frames=int(self._stream.frames or 0),
                audio=bool(streams.audio),
                codec=str(context.name),
                rotation=90 * turns,
            )
        except BaseException:
            self._container.close()
            raise

    def _decode_next(self) -> Any:
        try:
            return next(self._frames, None)
        except Exception as error:
            raise ImageReadError(
                f"{self.name}: cannot decode video frame {self.count + 1} ({_reason(error)})"
            ) from None

    def __iter__(self) -> Iterator[np.ndarray]:
        frame, self._first = self._first, None
        while frame is not None:
            self.count += 1
            array = frame.to_ndarray(format="rgb24")
            if self._turns:
                array = np.ascontiguousarray(np.rot90(array, self._turns))
            self.timestamps.append(frame.pts)
            yield array
            frame = self._decode_next()
        if self.count == 0:
            raise ImageReadError(f"{self.name}: cannot decode video (no frame decodes)")
        expected = self.info.frames
        # Containers that give a count (MP4) promise it; a shortfall is a truncated file.
        if expected and self.count < expected - max(1, expected // 100):
            raise ImageReadError(
                f"{self.name}: cannot decode video (truncated: {self.count} of {expected} frames)"
            )

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _quarter_turns(frame: Any) -> int:
    """Counter-clockwise quarter turns that show ``frame`` as its display matrix asks
    (``VideoFrame.rotation``, counter-clockwise degrees; 0 for PyAV without it)."""
    degrees = float(getattr(frame, "rotation", 0) or 0)
    return round(degrees / 90) % 4


def _reason(error: BaseException) -> str:
    text = one_line(error)
    # PyAV prefixes messages with the errno and repeats the file name: keep the reason.
    if ":" in text and text.startswith("[Errno"):
        text = text.split("]", 1)[-1].strip()
        text = text.split(":", 1)[0].strip() or text
    return text or type(error).__name__


class VideoWriter:
    """Encode frames into a clip, atomically: the frames go to a hidden temporary file beside
    ``target``, audio is copied from ``audio_from`` when the clip is complete, and only then
    is the file moved into place (never replacing ``target`` unless ``overwrite``).

    Parameters
    ----------
    target : pathlib.Path
        The clip to write; its folder must exist.
    image_format : str
        The format row (``"MP4"``, ``"MKV"``, ``"WEBM"``).
    fps : fractions.Fraction
        Frames per second.
    quality : int or None
        1-100 (see the module documentation), None for the default.
    overwrite : bool
        Replace ``target`` if it exists.
    audio_from : path, optional
        The clip whose audio is copied.
    name : str
        What to call the output in error messages.
    time_base : fractions.Fraction, optional
        The unit of the ``pts`` given to :meth:`write` (the source stream's, to keep its
        timing); None: frames are timed one after the other at ``fps``.

    Notes
    -----
    Use as a context manager: leaving it with an exception removes the temporary file.
    """

    def __init__(
        self,
        target: Path,
        image_format: str,
        fps: Fraction,
        *,
        quality: int | None = None,
        overwrite: bool = False,
        audio_from: str | os.PathLike[str] | None = None,
        name: str | None = None,
        time_base: Fraction | None = None,
    ) -> None:
        self.name = name or os.fspath(target)
        self._av = _av(self.name, ImageWriteError)
        atomic.check_target(target, self.name, overwrite)
        self.target, self.format, self.fps = target, image_format, Fraction(fps)
        self.quality, self.overwrite = quality, overwrite
        self.audio_from = audio_from
        self.audio_dropped: str | None = None
        self.frames = 0
        self.time_base = Fraction(1) / self.fps if time_base is None else Fraction(time_base)
        self._last_pts: int | None = None
        self._video_only = target.parent / atomic.temporary_name(target)
        self._container: Any = None
        self._stream: Any = None

    def _open(self, frame: np.ndarray) -> None:
        muxer, encoder = _CONTAINERS[self.format]
        height, width = frame.shape[:2]
        try:
            self._container = self._av.open(os.fspath(self._video_only), "w", format=muxer)
            stream = self._container.add_stream(encoder, rate=self.fps)
            stream.width, stream.height = width, height
            stream.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
            # The encoder's clock too: left at 1/fps it would round variable times to ticks.
            stream.time_base = stream.codec_context.time_base = self.time_base
            options = {"crf": str(crf_for(encoder, self.quality))}
            if encoder == "libx264":
                options["preset"] = "medium"
            else:
                options.update({"b": "0", "row-mt": "1", "deadline": "good", "cpu-used": "4"})
            stream.options = options
            self._stream = stream
        except Exception as error:
            raise ImageWriteError(f"{self.name}: cannot encode video ({_reason(error)})") from None

    def write(self, frame: np.ndarray, pts: int | None = None) -> None:
        """Append one ``uint8`` frame, RGB ``(H, W, 3)`` or grey ``(H, W)``, shown at ``pts``
        (in ``time_base``; None, or a time not after the previous frame's: the next tick)."""
        if frame.ndim == 2:
            frame = np.repeat(frame[..., None], 3, axis=-1)
        if self._container is None:
            self._open(frame)
        if pts is None:
            pts = self.frames if self._last_pts is None else self._last_pts + 1
        elif self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1  # times must increase: a repeated time is moved on
        self._last_pts = pts
        try:
            video_frame = self._av.VideoFrame.from_ndarray(
                np.ascontiguousarray(frame), format="rgb24"
            )
            video_frame.pts = pts
            video_frame.time_base = self.time_base
            for packet in self._stream.encode(video_frame):
                self._container.mux(packet)
        except Exception as error:
            raise ImageWriteError(f"{self.name}: cannot encode video ({_reason(error)})") from None
        self.frames += 1

    def finish(self) -> Path:
        """Flush the encoder, copy the audio, move the clip into place; return its path."""
        if self._container is None:
            raise ImageWriteError(f"{self.name}: cannot write a video of no frames")
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
        except Exception as error:
            raise ImageWriteError(f"{self.name}: cannot encode video ({_reason(error)})") from None
        self._container = None
        final = self._video_only
        if self.audio_from is not None:
            final = self._with_audio()
        atomic.move_into_place(final, self.target, self.name, self.overwrite)
        return self.target

    def _with_audio(self) -> Path:
        """Remux the encoded video with the source's audio packets into a second temporary
        file, interleaved by time; the video-only file if there is no audio to copy."""
        av = self._av
        muxer, _ = _CONTAINERS[self.format]
        combined = self.target.parent / atomic.temporary_name(self.target)
        try:
            with contextlib.ExitStack() as stack:
                assert self.audio_from is not None
                source = stack.enter_context(av.open(os.fspath(self.audio_from), "r"))
                if not source.streams.audio:
                    return self._video_only
                video = stack.enter_context(av.open(os.fspath(self._video_only), "r"))
                output = stack.enter_context(av.open(os.fspath(combined), "w", format=muxer))
                encoded = video.streams.video[0]
                pairs = [(encoded, output.add_stream_from_template(encoded))]
                for audio in source.streams.audio:
                    try:
                        pairs.append((audio, output.add_stream_from_template(audio)))
                    except Exception as error:
                        codec = audio.codec_context.name
                        self.audio_dropped = f"audio codec {codec}: {_reason(error)}"
                if len(pairs) == 1:
                    raise _NoAudio
                _interleave(output, pairs)
        except _NoAudio:
            with contextlib.suppress(OSError):
                combined.unlink()
            return self._video_only
        except Exception as error:
            with contextlib.suppress(OSError):
                combined.unlink()
            self.audio_dropped = _reason(error)
            return self._video_only
        with contextlib.suppress(OSError):
            self._video_only.unlink()
        self._video_only = combined
        return combined

    def abort(self) -> None:
        """Remove the temporary file (a failed or interrupted write)."""
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.close()
            self._container = None
        with contextlib.suppress(OSError):
            self._video_only.unlink()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        if kind is not None:
            self.abort()


class _NoAudio(Exception):
    pass


def _interleave(output: Any, pairs: list[tuple[Any, Any]]) -> None:
    """Mux every packet of the source streams of ``pairs`` into ``output`` in time order."""
    targets = {(id(source.container), source.index): target for source, target in pairs}
    by_container: dict[int, tuple[Any, list[Any]]] = {}
    for source, _ in pairs:
        by_container.setdefault(id(source.container), (source.container, []))[1].append(source)

    def packets(container: Any, streams: list[Any]) -> Iterator[tuple[float, Any, Any]]:
        for packet in container.demux(*streams):
            if packet.dts is None or packet.size == 0:
                continue  # the flushing packets demux ends each stream with
            target = targets[(id(container), packet.stream.index)]
            yield float(packet.dts * packet.time_base), target, packet

    merged = heapq.merge(
        *(packets(container, streams) for container, streams in by_container.values()),
        key=lambda item: item[0],
    )
    for _, target, packet in merged:
        packet.stream = target
        output.mux(packet)


# --------------------------------------------------------------------------------------------
# The table's interface: whole clips in memory
# --------------------------------------------------------------------------------------------


def decode(data: bytes, image_format: str, name: str, max_pixels: int | None) -> Decoded:
    """The first frame of a clip (as an animated GIF gives its first frame)."""
    with VideoReader(data, name, max_pixels) as reader:
        for frame in reader:
            return frame, None, _metadata(reader.info), 1
    raise ImageReadError(f"{name}: cannot decode video (no frame decodes)")  # pragma: no cover


def decode_pages(data: bytes, image_format: str, name: str, max_pixels: int | None) -> Stacked:
    """Every frame of a clip, ``(P, H, W, 3)`` ``uint8``; ``metadata["fps"]`` its rate."""
    with VideoReader(data, name, max_pixels) as reader:
        frames: list[np.ndarray] = []
        for frame in reader:
            frames.append(frame)
            check_size(name, (len(frames), reader.info.height, reader.info.width), max_pixels)
        return Stacked(np.stack(frames), None, _metadata(reader.info))


def _metadata(info: VideoInfo) -> dict[str, Any]:
    return {"fps": info.fps}


def fps_of(metadata: Mapping[str, Any]) -> Fraction:
    """The frame rate a stack's metadata names: ``fps``, else from animation durations."""
    fps = metadata.get("fps")
    if fps:
        return Fraction(fps).limit_denominator(1001 * 1000)
    durations = metadata.get("durations")
    if isinstance(durations, (list, tuple)) and durations and sum(durations) > 0:
        return Fraction(1000 * len(durations), int(sum(durations))).limit_denominator(1001)
    return DEFAULT_FPS


def encode(
    image_format: str,
    pages: np.ndarray,
    alpha: np.ndarray | None,
    metadata: Mapping[str, Any],
    quality: int | None,
) -> bytes:
    """Encode 8-bit pages as a clip at ``fps_of(metadata)`` (through a temporary file: MP4's
    muxer seeks back to write its index)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="tvdenoise-video-") as folder:
        target = Path(folder) / f"clip{formats.by_name(image_format).extensions[0]}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with VideoWriter(target, image_format, fps_of(metadata), quality=quality) as writer:
                for page in pages:
                    writer.write(page)
                writer.finish()
        return target.read_bytes()
