"""Soak: thousands of images through ``tvdenoise -j 2``: memory that does not grow, steady
throughput, and nothing lost when the command is killed.

Three phases, each running the installed command (``python -m tvdenoise``) as a user would:

1. small: ``--small`` images (default 5,000; 128x96 colour 8-bit PNG crops of scikit-image's
   samples with sigma 15 noise) with ``-j 2 --json`` and the default settings (automatic
   weight). The resident memory of the main process and of every worker is sampled every
   0.25 s (psutil); the peaks over the first and the last quarter of the images are compared
   (they must not grow with the number of images), and the throughput over the first and
   the last tenth of the images.
2. large: ``--large`` images of 4 MP (default 200; 2304x1728, a mosaic of the same samples),
   measured the same way.
3. kills: ``--kill-images`` of the small images (default 1,000) are denoised once cleanly;
   then, into an empty folder, runs with ``--skip-existing`` are killed (SIGKILL of the main
   process only, as the out-of-memory killer does) at ``--kills`` random moments (default 5,
   each uniform over the time the images still to do took in the clean run), and one last
   ``--skip-existing`` run completes
   them. Every output must be byte-identical to the clean run's, no temporary file may be
   left, and worker processes still alive 3 s after each kill (orphans) are counted.

    python benchmarks/bench_soak.py --write     # full run, RESULTS.md section
    python benchmarks/bench_soak.py --quick     # a small version in about a minute (CI)
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from common import commit as current_commit
from common import write_section

SECTION = "bench_soak.py"
SAMPLE_EVERY = 0.25
SEED = 4100


def load_average() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def _sources() -> list[np.ndarray]:
    from skimage import data

    return [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]


def make_small(folder: Path, count: int, seed: int = SEED) -> list[Path]:
    """``count`` noisy 128x96 colour PNG crops, named in order."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sources = _sources()
    paths = []
    for index in range(count):
        source = sources[index % len(sources)]
        top = int(rng.integers(0, source.shape[0] - 96))
        left = int(rng.integers(0, source.shape[1] - 128))
        crop = source[top : top + 96, left : left + 128].astype(np.float32)
        noisy = np.clip(np.round(crop + 15 * rng.standard_normal(crop.shape)), 0, 255)
        path = folder / f"small_{index:05d}.png"
        Image.fromarray(noisy.astype(np.uint8)).save(path, compress_level=1)
        paths.append(path)
    return paths


def make_large(folder: Path, count: int, seed: int = SEED + 1) -> list[Path]:
    """``count`` noisy 2304x1728 colour PNG photos (a mosaic of the samples, shifted per
    image)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tiles = [np.asarray(Image.fromarray(s).resize((576, 432))) for s in _sources()]
    row = np.concatenate(tiles, axis=1)  # 432 x 2304
    mosaic = np.concatenate([np.roll(row, 100 * k, axis=1) for k in range(4)], axis=0)
    paths = []
    for index in range(count):
        clean = np.roll(mosaic, 37 * index, axis=1).astype(np.float32)
        noisy = np.clip(np.round(clean + 15 * rng.standard_normal(clean.shape)), 0, 255)
        path = folder / f"large_{index:04d}.png"
        Image.fromarray(noisy.astype(np.uint8)).save(path, compress_level=1)
        paths.append(path)
    return paths


@dataclass
class Run:
    seconds: float = 0.0
    returncode: int | None = None
    finished: list[float] = field(default_factory=list)  # seconds since start, per image
    statuses: dict[str, int] = field(default_factory=dict)
    #: (seconds since start, main RSS, largest worker RSS, worker count)
    samples: list[tuple[float, int, int, int]] = field(default_factory=list)
    orphans: int = 0


def _command(inputs: Path, output: Path, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "tvdenoise", str(inputs), "-o", str(output), "-j", "2", *extra]


def _sample(process: Any) -> tuple[int, int, int]:
    import psutil

    try:
        main = process.memory_info().rss
        children = process.children(recursive=True)
    except psutil.Error:
        return 0, 0, 0
    workers = []
    for child in children:
        with contextlib.suppress(psutil.Error):
            workers.append(child.memory_info().rss)
    return main, max(workers, default=0), len(workers)


def run_command(
    inputs: Path, output: Path, extra: list[str], kill_after: float | None = None
) -> Run:
    """Run the command, sampling memory and timing each finished image (its --json line);
    with ``kill_after``, SIGKILL the main process after that many seconds."""
    import psutil

    result = Run()
    start = time.perf_counter()
    child = subprocess.Popen(
        _command(inputs, output, [*extra, "--json"]),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    process = psutil.Process(child.pid)

    def read() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("type", "image") == "image" and "status" in record:
                result.finished.append(time.perf_counter() - start)
                status = str(record["status"])
                result.statuses[status] = result.statuses.get(status, 0) + 1

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    workers: list[Any] = []
    while child.poll() is None:
        now = time.perf_counter() - start
        main, worker, count = _sample(process)
        if main:
            result.samples.append((now, main, worker, count))
        if kill_after is not None and now >= kill_after:
            try:
                workers = process.children(recursive=True)
            except psutil.Error:
                workers = []
            child.send_signal(signal.SIGKILL)
            break
        time.sleep(SAMPLE_EVERY)
    child.wait()
    reader.join(timeout=5)
    result.seconds = time.perf_counter() - start
    result.returncode = child.returncode
    if kill_after is not None:
        time.sleep(3)
        alive = [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
        result.orphans = len(alive)
        for orphan in alive:  # so the next run starts from what a user would find
            with contextlib.suppress(psutil.Error):
                orphan.kill()
        psutil.wait_procs(alive, timeout=5)
    return result


def steady_figures(run: Run) -> dict[str, float]:
    """Peaks of the first and last quarter of the run (by images finished) and throughput
    over the first and last tenth."""
    done = run.finished
    count = len(done)
    if count < 8:
        raise RuntimeError(f"only {count} images finished (exit {run.returncode})")
    quarter_end, last_start = done[count // 4 - 1], done[count - count // 4 - 1]
    first = [s for s in run.samples if s[0] <= quarter_end]
    last = [s for s in run.samples if s[0] >= last_start]
    tenth = max(count // 10, 2)
    rate_start = (tenth - 1) / max(done[tenth - 1] - done[0], 1e-9)
    rate_end = (tenth - 1) / max(done[-1] - done[-tenth], 1e-9)
    mib = 2.0**20
    return {
        "images": count,
        "seconds": run.seconds,
        "main_first": max((s[1] for s in first), default=0) / mib,
        "main_last": max((s[1] for s in last), default=0) / mib,
        "worker_first": max((s[2] for s in first), default=0) / mib,
        "worker_last": max((s[2] for s in last), default=0) / mib,
        "main_peak": max(s[1] for s in run.samples) / mib,
        "worker_peak": max(s[2] for s in run.samples) / mib,
        "rate_start": rate_start,
        "rate_end": rate_end,
    }


def digests(folder: Path) -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.iterdir())
        if path.is_file()
    }


def kill_phase(inputs: Path, folder: Path, kills: int, seed: int) -> dict[str, Any]:
    """A clean run, then ``kills`` SIGKILLed ``--skip-existing`` runs and one to completion."""
    clean = run_command(inputs, folder / "clean", [])
    reference = digests(folder / "clean")
    target = folder / "killed"
    rng = random.Random(seed)
    killed = []
    for _ in range(kills):
        # A random moment within the time the images still to do would take (a run killed
        # after it had finished would test nothing); start-up counts (the first 0.5 s).
        done = len(digests(target)) if target.exists() else 0
        left = max(1.0 - done / len(reference), 0.05)
        moment = rng.uniform(0.5, max(clean.seconds * left, 1.0))
        run = run_command(inputs, target, ["--skip-existing"], kill_after=moment)
        killed.append((moment, len(digests(target)) if target.exists() else 0, run.orphans))
    final = run_command(inputs, target, ["--skip-existing"])
    got = digests(target)
    temporaries = [name for name in got if name.endswith(".tmp") or name.startswith(".")]
    images = {name: digest for name, digest in got.items() if name not in temporaries}
    different = sorted(name for name in reference if images.get(name) != reference[name])
    return {
        "images": len(reference),
        "clean_seconds": clean.seconds,
        "kills": killed,
        "final_status": final.statuses,
        "final_returncode": final.returncode,
        "missing_or_different": different,
        "extra": sorted(set(images) - set(reference)),
        "temporaries": temporaries,
        "orphans": sum(k[2] for k in killed),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=5000)
    parser.add_argument("--large", type=int, default=200)
    parser.add_argument("--kill-images", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a small version (CI)")
    parser.add_argument("--write", action="store_true", help="write the RESULTS.md section")
    parser.add_argument("--folder", type=Path, default=None, help="work here (default: temp)")
    args = parser.parse_args(argv)
    if args.quick:
        args.small, args.large, args.kill_images, args.kills = 160, 0, 60, 2
    lines: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    commit = current_commit()
    say(
        f"## Soak: many images through `tvdenoise -j 2` ({SECTION}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {commit})"
    )
    say()
    say(
        f"`python benchmarks/bench_soak.py {' '.join(sys.argv[1:] if argv is None else argv)}`"
        f" on {os.cpu_count()} CPUs, load average {load_average()} at the start. Memory is "
        "the resident set (psutil, sampled every 0.25 s), in MiB: the main process, and the "
        "largest worker; first / last quarter of the images."
    )
    say()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(dir=args.folder) as temp:
        folder = Path(temp)
        say("| set | images | s | images/s first tenth / last tenth | main MiB first / last "
            "quarter (peak) | worker MiB first / last quarter (peak) | load |")  # fmt: skip
        say("| --- | --- | --- | --- | --- | --- | --- |")
        for name, count, maker in (
            ("small 128x96", args.small, make_small),
            ("4 MP 2304x1728", args.large, make_large),
        ):
            if count <= 0:
                continue
            inputs = maker(folder / name.split()[0], count)[0].parent
            run = run_command(inputs, folder / f"{name.split()[0]}_out", [])
            figures = steady_figures(run)
            results[name] = {**figures, "statuses": run.statuses, "returncode": run.returncode}
            say(
                f"| {name} | {figures['images']} ({run.statuses}) | {figures['seconds']:.1f} | "
                f"{figures['rate_start']:.2f} / {figures['rate_end']:.2f} | "
                f"{figures['main_first']:.0f} / {figures['main_last']:.0f} "
                f"({figures['main_peak']:.0f}) | {figures['worker_first']:.0f} / "
                f"{figures['worker_last']:.0f} ({figures['worker_peak']:.0f}) | "
                f"{load_average()} |"
            )
        say()
        kill_inputs = folder / "kill_inputs"
        make_small(kill_inputs, args.kill_images, SEED + 2)
        kills = kill_phase(kill_inputs, folder, args.kills, SEED + 3)
        results["kills"] = kills
        moments = ", ".join(f"{m:.1f} s ({done} written)" for m, done, _ in kills["kills"])
        say(
            f"Kills: {kills['images']} small images, clean run {kills['clean_seconds']:.1f} s; "
            f"SIGKILL of the main process at {moments}; orphaned workers alive 3 s after the "
            f"kills: {kills['orphans']}. The `--skip-existing` rerun: {kills['final_status']}, "
            f"exit {kills['final_returncode']}; outputs missing or different from the clean "
            f"run: {len(kills['missing_or_different'])}; extra files: {len(kills['extra'])}; "
            f"temporaries left: {len(kills['temporaries'])}."
        )
    if args.write and not args.quick:
        write_section(SECTION, lines)
    results["lines"] = lines
    return results


if __name__ == "__main__":
    main()
