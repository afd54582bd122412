"""Checkpoints: ``state_dict``s plus plain data, written atomically.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts only, so
it loads with ``torch.load(weights_only=True)``; pyrovae never unpickles
arbitrary objects and never uses Pyro's global parameter store for
persistence. Writes go to a temporary file in the same folder, are flushed to
disk and then renamed over the target (``os.replace`` is atomic on POSIX), so
a crash leaves either the old or the new checkpoint, never a torn one.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError

FORMAT = "pyrovae-checkpoint"
VERSION = 1


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, write) -> None:
    """Call ``write(fh)`` on a temporary file, fsync it, rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
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


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Atomically write ``payload`` (plain data and tensors) to ``path``."""
    payload = {"format": FORMAT, "version": VERSION, **payload}
    atomic_write_bytes(path, lambda fh: torch.save(payload, fh))


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
        raise CheckpointError(f"no checkpoint at {str(path)!r}")
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
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt or truncated") from None
    except Exception:
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt or truncated") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a pyrovae checkpoint")
    if int(ckpt.get("version", -1)) > VERSION:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has format version {ckpt.get('version')}; this pyrovae "
            f"reads up to {VERSION}"
        )
    return ckpt
