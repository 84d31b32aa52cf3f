"""Claims on outputs, so overlapping runs over one folder do each image once.

Under ``--skip-existing``, a run claims an image before it reads it: a hidden file beside the
output, ``.<name>.tvdenoise-claim``, created with ``O_CREAT | O_EXCL`` (atomic on local
filesystems and on NFS v3+), holding the host, the process id and the time. Another run that
finds a live claim skips the image ("being written by another run"); the claim is removed when
the image is done, failed or interrupted (every exit path of the job, Ctrl-C and SIGTERM
included).

A claim whose holder is gone is taken over: on the same host when its process no longer
exists; from another host when the holder has not renewed it (:func:`renew`, at the solver's
progress checks, at most every :data:`RENEW_SECONDS`) for :data:`STALE_SECONDS`. Where the
folder does not allow the claim file (read-only, or a filesystem that refuses it), the run goes
on without claims, as before they existed.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Claim", "ClaimedElsewhere", "claim_path", "release", "remove_stale", "renew", "take"]

#: A claim from another host not renewed for this long is taken over. The holder renews at
#: the solver's progress checks (every 10 to 25 iterations, well under a second even on a
#: 100-megapixel tile); reading and writing one image take seconds. Ten minutes leaves a wide
#: margin over both.
STALE_SECONDS = 600.0
#: How often a holder renews its claim (an os.utime).
RENEW_SECONDS = 30.0

SUFFIX = ".tvdenoise-claim"


class ClaimedElsewhere(Exception):
    """The output is claimed by another live run."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


@dataclass
class Claim:
    """A claim this process holds."""

    path: Path
    token: str
    renewed: float


def claim_path(target: Path) -> Path:
    """The claim file of an output: hidden, beside it."""
    return target.with_name(f".{target.name}{SUFFIX}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def _holder(path: Path) -> tuple[dict[str, object] | None, float | None]:
    try:
        text = path.read_text()
        age = time.time() - path.stat().st_mtime
    except OSError:
        return None, None
    try:
        owner = json.loads(text)
    except ValueError:  # half written by a process killed mid-write: judge it by its age
        return {}, age
    return (owner if isinstance(owner, dict) else {}), age


def _is_stale(owner: dict[str, object], age: float) -> bool:
    pid = owner.get("pid")
    if owner.get("host") == socket.gethostname() and isinstance(pid, int):
        return not _alive(pid)
    return age > STALE_SECONDS


def take(target: Path) -> Claim | None:
    """Claim ``target``; None where the folder does not allow claim files.

    Raises
    ------
    ClaimedElsewhere
        Another live run holds the claim (its host and pid are in the message).
    """
    path = claim_path(target)
    token = uuid.uuid4().hex
    content = json.dumps(
        {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time(), "token": token}
    ).encode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # the output's folder, made anyway
    except OSError:
        return None
    for _ in range(3):
        try:
            handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner, age = _holder(path)
            if owner is None or age is None:  # released meanwhile: try again
                continue
            if not _is_stale(owner, age):
                raise ClaimedElsewhere(
                    f"being written by another run (host {owner.get('host')}, "
                    f"pid {owner.get('pid')})"
                ) from None
            # Take a stale claim over: only one of several racers wins the rename.
            aside = path.with_name(f"{path.name}.{token}.stale")
            with contextlib.suppress(OSError):
                os.rename(path, aside)
                os.unlink(aside)
            continue
        except OSError:  # read-only folder, or no O_EXCL there: no claims
            return None
        try:
            os.write(handle, content)
        finally:
            os.close(handle)
        return Claim(path, token, time.monotonic())
    raise ClaimedElsewhere("being written by another run (its claim keeps changing hands)")


def remove_stale(target: Path) -> bool:
    """Remove ``target``'s claim if its holder is gone; whether one was removed.

    A run killed after writing an output and before releasing its claim leaves both; a later
    run that skips the existing output removes the claim here, so none is left behind.
    """
    path = claim_path(target)
    owner, age = _holder(path)
    if owner is None or age is None or not _is_stale(owner, age):
        return False
    aside = path.with_name(f"{path.name}.{uuid.uuid4().hex}.stale")
    try:
        os.rename(path, aside)
        os.unlink(aside)
    except OSError:
        return False
    return True


def renew(claim: Claim | None) -> None:
    """Show that the holder is alive (for runs on other hosts), at most every RENEW_SECONDS."""
    if claim is None or time.monotonic() - claim.renewed < RENEW_SECONDS:
        return
    claim.renewed = time.monotonic()
    with contextlib.suppress(OSError):
        os.utime(claim.path)


def release(claim: Claim | None) -> None:
    """Remove a claim this process holds (not one another run took over meanwhile)."""
    if claim is None:
        return
    owner, _ = _holder(claim.path)
    if owner is not None and owner.get("token") == claim.token:
        with contextlib.suppress(OSError):
            claim.path.unlink()
