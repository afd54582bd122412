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
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from ..atomic import (
    atomic_write_bytes,
    atomic_write_text,
    previous_path,
    remove_stale_temporaries,
)
from ..errors import CheckpointError
from ..runs.names import CHECKPOINT

__all__ = [
    "FORMAT",
    "VERSION",
    "UnreadableCheckpointError",
    "atomic_write_bytes",
    "atomic_write_text",
    "load_checkpoint",
    "load_resumable",
    "previous_path",
    "remove_stale_temporaries",
    "save_checkpoint",
]

logger = logging.getLogger(__name__)

FORMAT = "pyrovae-checkpoint"
VERSION = 1


class UnreadableCheckpointError(CheckpointError):
    """The checkpoint file is missing, truncated or corrupt (as after a crash or a disk
    fault), as opposed to readable but foreign or unsafe."""


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
        path = path / CHECKPOINT
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
    path = run_dir / CHECKPOINT if run_dir.is_dir() else run_dir
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
