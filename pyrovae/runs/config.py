"""``config.toml``: the options a run was trained with.

``pyrovae train`` writes the resolved options (every key of :data:`pyrovae.config.OPTIONS`
that has a value) here; ``--resume`` reads them back, checked and coerced by
:func:`pyrovae.config.load_toml`, and the report shows the file as written.
"""

from __future__ import annotations

import json
import logging
import math
import tomllib
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from ..config import load_toml
from .names import CONFIG

logger = logging.getLogger(__name__)


def config_path(run_dir: str | Path) -> Path:
    """``run_dir/config.toml``."""
    return Path(run_dir) / CONFIG


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return "nan" if isinstance(v, float) and math.isnan(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def to_toml(config: dict[str, Any]) -> str:
    """Write a flat config (scalars, lists, tables of scalars) as TOML; None values and
    empty tables are left out."""
    lines, tables = [], []
    for k, v in config.items():
        if v is None:
            continue
        if isinstance(v, dict):
            if v:
                tables.append((k, v))
            continue
        lines.append(f"{k} = {_toml_value(v)}")
    for k, table in tables:
        lines += ["", f"[{k}]"] + [f"{tk} = {_toml_value(tv)}" for tk, tv in table.items()]
    return "\n".join(lines) + "\n"


def write_config(run_dir: str | Path, config: dict[str, Any]) -> Path:
    """Atomically write ``config`` as the run's ``config.toml``; return its path."""
    path = config_path(run_dir)
    atomic_write_text(path, to_toml(config))
    return path


def has_config(run_dir: str | Path) -> bool:
    """Whether the run folder holds a ``config.toml`` (runs trained with the Python API
    have none)."""
    return config_path(run_dir).is_file()


def read_config(run_dir: str | Path) -> dict[str, Any]:
    """The run's ``config.toml``, checked and coerced as a ``--config`` file is.

    Raises
    ------
    ConfigError
        The file is missing, not valid TOML, or holds an unknown key or a bad value.
    """
    return load_toml(config_path(run_dir))


def read_raw_config(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's ``config.toml`` as written (unchecked), or None where there is none or
    it cannot be read (logged)."""
    path = config_path(run_dir)
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        logger.warning("cannot read %s: %s", path, exc)
        return None
