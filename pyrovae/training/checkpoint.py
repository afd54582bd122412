"""Checkpoints: ``state_dict``s plus plain data, written atomically.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts only, so
it loads with ``torch.load(weights_only=True)``; pyrovae never unpickles
arbitrary objects and never uses Pyro's global parameter store for
persistence. Writes go to a temporary file in the same folder, are flushed to
disk and then renamed over the target (``os.replace`` is atomic on POSIX), so
a crash leaves either the old or the new checkpoint, never a torn one.

A run's checkpoint keeps its predecessor: just before the new file is renamed
over ``checkpoint.pt``, the current one is hard-linked (copied where links are
not supported) to a temporary name that is renamed over ``checkpoint.prev.pt``.
At every instant ``checkpoint.pt`` is a complete checkpoint (the old one or the
new one) and ``checkpoint.prev.pt`` the one before it. :func:`load_resumable`
falls back to the previous checkpoint, with a logged warning, when the current
one cannot be read (a disk or file system that lost data despite the fsyncs, or
a file damaged later).
"""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError

logger = logging.getLogger(__name__)

FORMAT = "pyrovae-checkpoint"
VERSION = 1


class UnreadableCheckpointError(CheckpointError):
    """The checkpoint file is missing, truncated or corrupt (as after a crash or a disk
    fault), as opposed to readable but foreign or unsafe."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def previous_path(path: str | Path) -> Path:
    """Where the checkpoint before ``path`` is kept: ``checkpoint.pt`` ->
    ``checkpoint.prev.pt``."""
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


def atomic_write_bytes(path: str | Path, write, keep_previous: bool = False) -> None:
    """Call ``write(fh)`` on a temporary file, fsync it, rename it to ``path``.

    With ``keep_previous`` the file being replaced becomes ``previous_path(path)``.
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
    try:  # make the rename durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def atomic_write_text(path: str | Path, text: str) -> None:
    """Atomically replace ``path`` with ``text`` (UTF-8)."""
    atomic_write_bytes(path, lambda fh: fh.write(text.encode("utf-8")))


def save_checkpoint(path: str | Path, payload: dict[str, Any], keep_previous: bool = False) -> None:
    """Atomically write ``payload`` (plain data and tensors) to ``path`` (keeping the
    file it replaces as ``checkpoint.prev.pt`` if ``keep_previous``)."""
    payload = {"format": FORMAT, "version": VERSION, **payload}
    atomic_write_bytes(path, lambda fh: torch.save(payload, fh), keep_previous=keep_previous)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint safely (``weights_only=True``).

    Raises
    ------
    CheckpointError
        If the file is missing, truncated or corrupt, holds pickled objects
        other than plain data (refused without running them), or is not a
        pyrovae checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.exists():
        raise UnreadableCheckpointError(f"no checkpoint at {str(path)!r}")
    try:
        with warnings.catch_warnings():  # torch warns about odd bytes before failing
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "unsupported global" in str(exc).lower():  # a class or function to import
            raise CheckpointError(
                f"refusing to load {str(path)!r}: it holds pickled objects other than "
                "tensors and plain data"
            ) from None
        raise UnreadableCheckpointError(
            f"checkpoint {str(path)!r} is corrupt or truncated"
        ) from None
    except Exception:
        raise UnreadableCheckpointError(
            f"checkpoint {str(path)!r} is corrupt or truncated"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a pyrovae checkpoint")
    if int(ckpt.get("version", -1)) > VERSION:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has format version {ckpt.get('version')}; this pyrovae "
            f"reads up to {VERSION}"
        )
    return ckpt


def load_resumable(run_dir: str | Path, map_location: str | torch.device = "cpu") -> tuple:
    """A run's newest readable checkpoint: ``checkpoint.pt``, or ``checkpoint.prev.pt``
    (with a logged warning) when the former is missing, truncated or corrupt. A
    checkpoint that is readable but refused (pickled objects, not a pyrovae checkpoint,
    a newer format) is an error, not a reason to fall back.

    Returns
    -------
    (dict, Path)
        The checkpoint and the file it was read from.

    Raises
    ------
    CheckpointError
        If neither can be read (the error about ``checkpoint.pt``).
    """
    run_dir = Path(run_dir)
    path = run_dir / "checkpoint.pt" if run_dir.is_dir() else run_dir
    try:
        return load_checkpoint(path, map_location), path
    except UnreadableCheckpointError as exc:
        prev = previous_path(path)
        if not prev.exists():
            raise
        try:
            ckpt = load_checkpoint(prev, map_location)
        except CheckpointError:
            raise exc from None
        logger.warning("%s; using the previous checkpoint %s instead", exc, prev.name)
        return ckpt, prev
