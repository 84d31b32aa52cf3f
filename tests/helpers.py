"""Small test images shared by the batch tests, and the command run in a pseudo-terminal
(imported as a top-level module: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def save_noisy_png(path: Path, seed: int, size: int = 24) -> Path:
    """A grey ``size`` x ``size`` PNG: a bright rectangle on a dark ground plus noise (25/255)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    clean = np.full((size, size), 60.0)
    clean[size // 4 : 3 * size // 4, size // 3 :] = 190.0
    noisy = np.clip(clean + 25 * rng.standard_normal(clean.shape), 0, 255)
    Image.fromarray(noisy.astype(np.uint8)).save(path)
    return path


#: Cursor moves, erasures and colours: what separates the frames of a live display.
ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def run_in_terminal(args: list[str], cwd: Path, timeout: float = 120.0) -> tuple[int, str, str]:
    """Run ``python -m tvdenoise ARGS`` (this checkout's package) with stderr on a
    pseudo-terminal of 140 x 40 and stdout on a pipe; return the exit code, stdout, and the
    terminal's output as lines of text (escape sequences turned into line breaks)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 140, 0, 0))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm-256color", "COLUMNS": "140"}
    for name in ("NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "FORCE_COLOR"):
        env.pop(name, None)
    process = subprocess.Popen(
        [sys.executable, "-m", "tvdenoise", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        cwd=cwd,
        env=env,
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif process.poll() is not None:
                break
        else:
            process.kill()
            pytest.fail(f"tvdenoise {' '.join(args)} ran over {timeout} s")
        stdout = process.stdout.read().decode() if process.stdout else ""
        code = process.wait(timeout=30)
    finally:
        os.close(master)
    text = ESCAPE.sub("\n", b"".join(chunks).decode("utf-8", "replace"))
    return code, stdout, text.replace("\r", "\n")


def terminal_lines(text: str) -> list[str]:
    """The non-blank lines of :func:`run_in_terminal`'s terminal output, stripped."""
    return [line.strip() for line in text.splitlines() if line.strip()]
