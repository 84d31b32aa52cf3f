"""Atomic file writes and the clean-up of what interrupted writes leave (no numpy, no torch).

Every file tvdenoise writes (images, reports) goes through :func:`write_atomically`: the data
goes to a hidden temporary file in the target's folder (``.<name>.tvdenoise-<random>.tmp``,
:data:`TEMP_NAME_PATTERN`), is flushed to disk, and only then moved into place, so a target
is never partial. :func:`clean_stale_temps` removes the temporaries a killed write left; it is
the one place that does.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import time
from collections.abc import Collection
from pathlib import Path

from ..errors import ImageWriteError

__all__ = [
    "TEMP_NAME_PATTERN",
    "check_target",
    "clean_stale_temps",
    "move_into_place",
    "temporary_name",
    "write_atomically",
]


#: Names of the temporary files :func:`tvdenoise.save_image` writes before moving them into place:
#: ``.<target name>.tvdenoise-<8 hex digits>.tmp``; group ``target`` is the target's name.
TEMP_NAME_PATTERN = re.compile(r"^\.(?P<target>.+)\.tvdenoise-[0-9a-f]{8}\.tmp$")


def temporary_name(target: Path) -> str:
    """A fresh hidden name beside ``target`` matching :data:`TEMP_NAME_PATTERN`."""
    return f".{target.name}.tvdenoise-{secrets.token_hex(4)}.tmp"


def clean_stale_temps(
    folder: str | os.PathLike[str],
    *,
    older_than: float = 0.0,
    recursive: bool = False,
    targets: Collection[str] | None = None,
    strict: bool = True,
) -> list[Path]:
    """Remove the temporary files that interrupted writes of :func:`tvdenoise.save_image` left.

    A write killed between creating its temporary file and moving it into place (``kill
    -9``, power loss) leaves a hidden ``.<name>.tvdenoise-<random>.tmp`` file; the target
    itself is never partial. Only files matching :data:`TEMP_NAME_PATTERN` are touched.

    Parameters
    ----------
    folder : str or os.PathLike
        Where to look.
    older_than : float, optional
        Only remove temporary files last modified at least this many seconds ago, so that a
        clean-up does not break a write in progress in another process. Default 0: all.
    recursive : bool, optional
        Also look in sub-folders. Default False.
    targets : collection of str, optional
        Only remove the temporaries of these target names (``"a.png"`` for
        ``.a.png.tvdenoise-<random>.tmp``), so that a run cleaning up after its own outputs
        spares other writers' files in the same folder. Default: all.
    strict : bool, optional
        Raise on a folder that cannot be listed or a file that cannot be removed (the
        default); False skips them, for a best-effort clean-up before a run.

    Returns
    -------
    list of pathlib.Path
        The files removed, sorted.

    Raises
    ------
    ImageWriteError
        If ``strict`` and ``folder`` cannot be listed, or a temporary file found cannot be
        removed.

    Examples
    --------
    >>> clean_stale_temps("clean/", older_than=60)  # doctest: +SKIP
    [PosixPath('clean/.frame_0042.png.tvdenoise-3f9a0c1e.tmp')]
    """
    name = os.fspath(folder)
    root = Path(name)
    try:
        candidates = root.rglob(".*.tmp") if recursive else root.glob(".*.tmp")
        found = sorted(path for path in candidates if _is_temporary(path.name, targets))
    except OSError as error:
        if not strict:
            return []
        raise _write_error(name, error) from None
    if not root.is_dir():
        if not strict:
            return []
        raise ImageWriteError(f"{name}: no such folder")
    removed: list[Path] = []
    now = time.time()
    for path in found:
        try:
            if older_than > 0 and now - path.lstat().st_mtime < older_than:
                continue
            path.unlink()
        except FileNotFoundError:
            continue  # removed meanwhile, by its own writer or another clean-up
        except OSError as error:
            if not strict:
                continue
            raise _write_error(os.fspath(path), error) from None
        removed.append(path)
    return removed


def _is_temporary(name: str, targets: Collection[str] | None) -> bool:
    match = TEMP_NAME_PATTERN.match(name)
    return match is not None and (targets is None or match.group("target") in targets)


def check_target(target: Path, name: str, overwrite: bool) -> None:
    """Fail early, before encoding, for targets that cannot be written."""
    if target.is_dir():
        raise ImageWriteError(f"{name}: is a directory")
    parent = target.parent
    if not parent.is_dir():
        raise ImageWriteError(f"{name}: folder '{os.fspath(parent)}' does not exist")
    if not overwrite and (target.exists() or target.is_symlink()):
        raise ImageWriteError(f"{name}: exists (use --overwrite to replace it)")


def _write_error(name: str, error: OSError) -> ImageWriteError:
    if isinstance(error, PermissionError):
        return ImageWriteError(f"{name}: permission denied")
    if isinstance(error, IsADirectoryError):
        return ImageWriteError(f"{name}: is a directory")
    if error.errno == errno.ENOSPC:
        return ImageWriteError(f"{name}: no space left on device")
    if error.errno == errno.EROFS:
        return ImageWriteError(f"{name}: read-only file system")
    reason = error.strerror or " ".join(str(error).split())
    return ImageWriteError(f"{name}: cannot write ({reason})")


# errno values with which os.link says "this file system has no hard links".
_NO_HARD_LINKS = {
    code
    for code in (
        getattr(errno, "EPERM", None),
        getattr(errno, "ENOTSUP", None),
        getattr(errno, "EOPNOTSUPP", None),
        getattr(errno, "ENOSYS", None),
        getattr(errno, "EMLINK", None),
        getattr(errno, "EXDEV", None),
    )
    if code is not None
}


def write_atomically(target: Path, data: bytes, name: str, overwrite: bool) -> None:
    """Write ``data`` to ``target`` atomically: a hidden temporary file in the same folder,
    flushed to disk, then moved into place (never replacing an existing file unless
    ``overwrite``); errors become :class:`ImageWriteError` naming ``name``."""
    folder = target.parent
    temporary: Path | None = None
    descriptor = -1
    try:
        for _ in range(100):
            candidate = folder / temporary_name(target)
            try:
                # 0o666 lets the umask decide the final permissions, as for any new file.
                descriptor = os.open(
                    candidate,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                    0o666,
                )
            except FileExistsError:
                continue
            temporary = candidate
            break
        else:
            raise ImageWriteError(f"{name}: cannot create a temporary file in its folder")
        with os.fdopen(descriptor, "wb") as stream:
            descriptor = -1  # the file object owns it now
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        if overwrite:
            os.replace(temporary, target)
        else:
            _move_without_replacing(temporary, target, name)
        temporary = None
        _sync_folder(folder)
    except ImageWriteError:
        raise
    except OSError as error:
        raise _write_error(name, error) from None
    finally:
        if descriptor != -1:
            os.close(descriptor)
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)


def move_into_place(temporary: Path, target: Path, name: str, overwrite: bool) -> None:
    """Flush a complete temporary file (written by a streaming encoder, a video) to disk and
    move it to ``target`` as :func:`write_atomically` does; the temporary file is removed
    whatever happens; errors become :class:`ImageWriteError` naming ``name``."""
    try:
        descriptor = os.open(temporary, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        if overwrite:
            os.replace(temporary, target)
        else:
            _move_without_replacing(temporary, target, name)
        _sync_folder(target.parent)
    except ImageWriteError:
        raise
    except OSError as error:
        raise _write_error(name, error) from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)


def _move_without_replacing(temporary: Path, target: Path, name: str) -> None:
    try:
        os.link(temporary, target)
    except FileExistsError:
        raise ImageWriteError(f"{name}: exists (use --overwrite to replace it)") from None
    except (AttributeError, NotImplementedError):
        _replace_if_absent(temporary, target, name)
        return
    except OSError as error:
        # EPERM also means "no hard links here" (FAT, some network and FUSE file systems);
        # EACCES is a real permission problem and is reported as such.
        if error.errno not in _NO_HARD_LINKS:
            raise
        _replace_if_absent(temporary, target, name)
        return
    os.unlink(temporary)


def _replace_if_absent(temporary: Path, target: Path, name: str) -> None:
    if target.exists() or target.is_symlink():
        raise ImageWriteError(f"{name}: exists (use --overwrite to replace it)")
    os.replace(temporary, target)


def _sync_folder(folder: Path) -> None:
    """Make the rename durable; best effort (not possible on every system)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
