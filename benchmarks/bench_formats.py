"""Video and FITS through tvdenoise's io package: clip throughput, memory, volume vs frames,
chunk seams, FITS read/write time.

    python benchmarks/bench_formats.py                 # 720p and 1080p, 8 frames each
    python benchmarks/bench_formats.py --frames 16 --write   # and update RESULTS.md

What it measures (PROTOCOL.md, "Speed": one process per measurement for its peak memory,
load average printed beside every figure; the machines are shared and noisy):

- Clips: a synthetic moving still (a smooth pattern sliding 2 pixels a frame, protocol noise
  sigma 25 with seed 1234, clipped to 8 bits) is encoded losslessly (H.264 CRF 0), then
  denoised with ``tvdenoise.streaming.denoise_clip`` from a ``VideoReader`` into a
  ``VideoWriter``, as ``tvdenoise clip.mp4`` does, at weight 0.08, for ``--stack frames`` and
  ``--stack volume`` (chunks of 16 frames sharing 4, or of the clip when shorter). Each runs
  in a fresh process: frames per second (wall, decoding and encoding included), the process's
  peak resident memory, and the PSNR of the written frames against the clean ones; the
  reference in the same process is the decode + encode pass alone (no denoising).
- Seams: a 96 x 96 moving still of 24 frames denoised as one volume and in chunks of 8
  sharing 0, 2 or 4 frames: the largest and mean difference from the whole-volume result.
- FITS: a 4096 x 4096 float32 frame saved and loaded through ``save_image``/``load_image``,
  against numpy's own ``.npy`` save/load of the same array (best of 3).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIZES = {"240p": (240, 320), "720p": (720, 1280), "1080p": (1080, 1920)}
WEIGHT = 0.08


def moving_still(frames: int, height: int, width: int, speed: int = 2) -> np.ndarray:
    """Clean uint8 RGB frames: smooth colour waves plus bars, sliding ``speed`` px a frame."""
    rows, columns = np.mgrid[:height, :width].astype(np.float32)
    out = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        x = columns - speed * t
        bars = np.where((x // 64) % 2 == 0, 0.25, 0.0)
        for channel, phase in enumerate((0.0, 2.0, 4.0)):
            wave = 0.35 + 0.2 * np.sin(x / 97.0 + phase) * np.cos(rows / 83.0 - phase)
            out[t, ..., channel] = np.clip(255 * (wave + bars), 0, 255)
    return out


def noisy(clean: np.ndarray) -> np.ndarray:
    z = np.random.default_rng(1234).standard_normal(clean.shape, dtype=np.float32)
    return np.clip(clean + 25.0 * z, 0, 255).astype(np.uint8)


def write_source(path: Path, frames: np.ndarray) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv444p"
        stream.options = {"crf": "0", "preset": "ultrafast"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    error = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / error))


def run_clip(source: str, mode: str, frames: int, height: int, width: int) -> dict:
    """One measurement (run in its own process): denoise ``source`` into a temporary clip."""
    import resource

    from tvdenoise.io.video import VideoReader, VideoWriter
    from tvdenoise.streaming import denoise_clip

    target = Path(source).with_name(f"out_{mode}.mp4")
    target.unlink(missing_ok=True)
    started = time.perf_counter()
    with (
        VideoReader(source, source) as reader,
        VideoWriter(target, "MP4", reader.info.fps, overwrite=True) as writer,
    ):
        if mode == "copy":
            for frame in reader:
                writer.write(frame)
        else:
            denoise_clip(reader, writer.write, volume=mode == "volume", weight=WEIGHT,
                         chunk=16, overlap=4)  # fmt: skip
        writer.finish()
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB (Linux: KiB)
    with VideoReader(str(target), str(target)) as reader:
        written = np.stack(list(reader))
    clean = moving_still(frames, height, width)
    return {
        "fps": frames / seconds,
        "seconds": seconds,
        "peak_mib": peak,
        "psnr": psnr(written, clean),
        "load": os.getloadavg()[0],
    }


def run_memory(chunk: int, height: int, width: int) -> dict:
    """Peak memory of one space-time chunk (run in its own process): ``chunk`` frames denoised
    as one volume for 3 iterations (the memory does not depend on how long it runs)."""
    import resource

    from tvdenoise.streaming import denoise_clip

    frames = noisy(moving_still(chunk, height, width))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    denoise_clip(iter(frames), lambda frame: None, volume=True, weight=WEIGHT, chunk=chunk,
                 overlap=min(4, chunk - 1), max_iter=3)  # fmt: skip
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"peak_mib": peak, "frames_mib": before, "load": os.getloadavg()[0]}


def memory(height: int, width: int, chunks: tuple[int, ...] = (4, 8, 16)) -> list[str]:
    lines = ["| frames per chunk | peak memory | before the solve (libraries, the frames) | load |"]
    lines.append("|---|---|---|---|")
    for chunk in chunks:
        command = [sys.executable, __file__, "--memory", str(chunk), str(height), str(width)]
        output = subprocess.run(command, capture_output=True, text=True, check=True)
        r = json.loads(output.stdout.strip().splitlines()[-1])
        lines.append(
            f"| {chunk} | {r['peak_mib']:.0f} MiB | {r['frames_mib']:.0f} MiB | {r['load']:.1f} |"
        )
        print(lines[-1], flush=True)
    return lines


def seams(side: int = 96) -> list[str]:
    import tvdenoise as tvd
    from tvdenoise.streaming import denoise_clip

    clean = moving_still(24, side, side)
    frames = noisy(clean)
    whole = tvd.denoise(frames.astype(np.float32) / 255, weight=WEIGHT, volume=True)
    whole = np.clip(np.round(whole * 255), 0, 255)
    lines = [
        "| overlap (frames) | largest difference | mean difference | PSNR |",
        "|---|---|---|---|",
    ]
    lines.append(f"| whole volume | 0 | 0 | {psnr(whole, clean):.2f} dB |")
    for overlap in (0, 2, 4):
        pieces: list[np.ndarray] = []
        denoise_clip(iter(frames), pieces.append, volume=True, weight=WEIGHT, chunk=8,
                     overlap=overlap)  # fmt: skip
        chunked = np.stack(pieces).astype(np.float64)
        diff = np.abs(chunked - whole)
        lines.append(
            f"| {overlap} | {diff.max():.0f}/255 | {diff.mean():.3f}/255 | "
            f"{psnr(chunked, clean):.2f} dB |"
        )
    return lines


def fits_timing(side: int = 4096) -> list[str]:
    from tvdenoise.image_io import load_image, save_image

    array = np.random.default_rng(0).normal(1000, 50, (side, side)).astype(np.float32)
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(3):
            for label, action in (
                ("fits write", lambda: save_image(Path(folder) / "a.fits", array, overwrite=True)),
                ("fits read", lambda: load_image(Path(folder) / "a.fits")),
                ("npy write", lambda: np.save(Path(folder) / "a.npy", array)),
                ("npy read", lambda: np.load(Path(folder) / "a.npy")),
            ):
                started = time.perf_counter()
                action()
                best[label] = min(best.get(label, 1e9), time.perf_counter() - started)
    load = os.getloadavg()[0]
    return [
        f"| {side} x {side} float32 | tvdenoise (FITS) | numpy (.npy) | ratio | load |",
        "|---|---|---|---|---|",
        f"| write | {best['fits write']:.3f} s | {best['npy write']:.3f} s | "
        f"{best['fits write'] / best['npy write']:.1f} | {load:.1f} |",
        f"| read | {best['fits read']:.3f} s | {best['npy read']:.3f} s | "
        f"{best['fits read'] / best['npy read']:.1f} | {load:.1f} |",
    ]


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="720p,1080p")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--modes", default="copy,frames,volume", help="of copy,frames,volume")
    parser.add_argument("--skip-fits", action="store_true")
    parser.add_argument(
        "--quick", action="store_true", help="240p clips of 3 frames, small seams and FITS (tests)"
    )
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    parser.add_argument("--output", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    parser.add_argument("--memory-only", action="store_true", help="only the 1080p chunk memory")
    parser.add_argument("--memory", nargs=3, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--measure", nargs=5, metavar=("SOURCE", "MODE", "N", "H", "W"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.frames = "240p", 3
    if args.memory:
        print(json.dumps(run_memory(*args.memory)))
        return []
    if args.memory_only:
        lines = ["Peak memory of 1080p space-time chunks:", "", *memory(*SIZES["1080p"])]
        print("\n".join(lines))
        return lines
    if args.measure:
        source, mode, count, height, width = args.measure
        print(json.dumps(run_clip(source, mode, int(count), int(height), int(width))))
        return []
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent,
    ).stdout.strip()
    lines = [
        f"## Formats: FITS and video (bench_formats.py, {time.strftime('%Y-%m-%d')}, "
        f"commit {commit or 'unknown'})",
        "",
        f"`python benchmarks/bench_formats.py {' '.join(sys.argv[1:] if argv is None else argv)}`",
        "",
        f"Clips of {args.frames} frames, weight {WEIGHT}, load average at start "
        f"{os.getloadavg()[0]:.1f} (2 cores shared):",
        "",
        "| size | mode | frames/s | vs decode+encode alone | peak memory | PSNR (noisy: "
        "see first row) | load |",
        "|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as folder:
        for size in filter(None, args.sizes.split(",")):
            height, width = SIZES[size]
            clean = moving_still(args.frames, height, width)
            source = Path(folder) / f"{size}.mp4"
            write_source(source, noisy(clean))
            noisy_psnr = psnr(noisy(clean), clean)
            results = {}
            for mode in ["copy", *(m for m in args.modes.split(",") if m != "copy")]:
                command = [sys.executable, __file__, "--measure", str(source), mode,
                           str(args.frames), str(height), str(width)]  # fmt: skip
                output = subprocess.run(command, capture_output=True, text=True, check=True)
                results[mode] = json.loads(output.stdout.strip().splitlines()[-1])
                r = results[mode]
                ratio = results["copy"]["fps"] / r["fps"]
                shown = f"{noisy_psnr:.2f} dB noisy" if mode == "copy" else f"{r['psnr']:.2f} dB"
                lines.append(
                    f"| {size} | {'decode+encode' if mode == 'copy' else mode} | {r['fps']:.2f} | "
                    f"{ratio:.1f}x slower | {r['peak_mib']:.0f} MiB | {shown} | {r['load']:.1f} |"
                )
                print(lines[-1], flush=True)
    memory_size, side = ("240p", 32) if args.quick else ("1080p", 96)
    chunks = (4,) if args.quick else (4, 8, 16)
    lines += ["", f"Peak memory of {memory_size} space-time chunks:", ""]
    lines += memory(*SIZES[memory_size], chunks)
    lines += ["", f"Chunk seams ({side} x {side} x 24 frames, chunks of 8):", "", *seams(side)]
    if not args.skip_fits:
        lines += ["", "FITS:", "", *fits_timing(256 if args.quick else 4096)]
    print("\n".join(lines))
    if args.write:
        sys.path.insert(0, str(Path(__file__).parent))
        from common import write_section

        write_section("bench_formats", lines, args.output)
    return lines


if __name__ == "__main__":
    main()
