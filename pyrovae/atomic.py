"""Atomic file writes: a crash leaves either the old file or the new one, never a torn one.

A write goes to a temporary file in the target's folder, is flushed and fsynced, then
renamed over the target (``os.replace`` is atomic on POSIX); the folder is fsynced so
that the rename itself survives a power loss. Temporaries are named ``.NAME.*.tmp``
so that :func:`remove_stale_temporaries` can find the ones a killed write left behind.

This module imports nothing from pyrovae: the data layer (caches), the run folder
(:mod:`pyrovae.runs`) and the checkpoints (:mod:`pyrovae.training.checkpoint`) all
write through it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def previous_path(path: str | Path) -> Path:
    """Where the file before ``path`` is kept: ``checkpoint.pt`` -> ``checkpoint.prev.pt``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def _keep_previous(path: Path) -> None:
    """Make ``previous_path(path)`` the current ``path`` (atomically; no-op if none)."""
    if not path.exists():
        return
    prev = previous_path(path)
    tmp = path.parent / f".{prev.name}.{os.getpid()}.tmp"
    try:
        os.link(path, tmp)
    except FileExistsError:
        os.unlink(tmp)
        os.link(path, tmp)
    except OSError:  # no hard links here: copy (and fsync) instead
        shutil.copyfile(path, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
    os.replace(tmp, prev)


def fsync_folder(folder: str | Path) -> None:
    """Make renames and unlinks in ``folder`` durable (ignored where unsupported)."""
    try:
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete temporary files left in ``folder`` by writes that were killed midway."""
    removed = []
    for tmp in Path(folder).glob(".*.tmp"):
        try:
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass
    return removed


def atomic_write_bytes(
    path: str | Path, write: Callable[[BinaryIO], object], keep_previous: bool = False
) -> None:
    """Call ``write(fh)`` on a temporary file, fsync it, rename it to ``path``.

    With ``keep_previous`` the file being replaced becomes ``previous_path(path)``: at
    every instant ``path`` is complete (old or new) and the previous file is the one
    before it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        if keep_previous:
            _keep_previous(path)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_folder(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Atomically replace ``path`` with ``text`` (UTF-8)."""
    atomic_write_bytes(path, lambda fh: fh.write(text.encode("utf-8")))
