"""JSON files of a run folder (``run.json``, ``evaluation.json``, ``diagnostics.json``, the
selection and comparison results): strict JSON, written atomically.

Strict means what any JSON parser accepts: NaN and infinities (the ELBO of an
autoencoder, an undefined statistic) are written as ``null``, never as the
non-standard ``NaN`` / ``Infinity`` tokens.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text

logger = logging.getLogger(__name__)


def plain(value: Any) -> Any:
    """A JSON-safe copy of ``value``: NaN and infinities become None, tensors and NumPy
    values become Python numbers and lists, mapping keys become strings."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if not isinstance(value, (str, bytes)) and hasattr(value, "tolist"):
        return plain(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_json(value: Any) -> str:
    """``value`` as strict, indented JSON (see :func:`plain`; other objects as ``str``)."""
    return json.dumps(plain(value), indent=2, default=str, allow_nan=False)


def write_json(path: str | Path, value: Any) -> Path:
    """Atomically write ``value`` as strict JSON (with a final newline) to ``path``."""
    path = Path(path)
    atomic_write_text(path, to_json(value) + "\n")
    return path


def read_json(path: str | Path) -> dict | None:
    """The JSON object in ``path``; None where there is no file, or it cannot be read or
    does not hold an object (logged)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        logger.warning("cannot read %s: %s", path, exc)
        return None
    return data if isinstance(data, dict) else None
