"""``metrics.csv``: the training curves of a run, one row per epoch.

The trainer rewrites the whole file after every epoch from its history (atomically,
so a crash leaves the previous complete file and a resumed run's file matches its
checkpoint); the report and the tests read it back here.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from .names import METRICS

#: The columns of ``metrics.csv``, in order. Losses and ELBO terms are per data point;
#: ``seconds`` and ``cpu_seconds`` are the epoch's wall and process CPU time; ``lr`` is
#: the learning rate the epoch trained with.
METRIC_COLUMNS = (
    "epoch",
    "beta",
    "train_loss",
    "train_elbo",
    "train_recon",
    "train_kl",
    "val_loss",
    "val_elbo",
    "val_recon",
    "val_kl",
    "seconds",
    "cpu_seconds",
    "lr",
)


def metrics_path(run_dir: str | Path) -> Path:
    """``run_dir/metrics.csv``."""
    return Path(run_dir) / METRICS


def format_metrics(history: Iterable[Mapping[str, Any]]) -> str:
    """The CSV text of ``history`` (floats to 6 significant digits; other keys dropped)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in history:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()


def write_metrics(run_dir: str | Path, history: Iterable[Mapping[str, Any]]) -> Path:
    """Atomically rewrite the run's ``metrics.csv`` from ``history``; return its path."""
    path = metrics_path(run_dir)
    atomic_write_text(path, format_metrics(history))
    return path


def read_metrics(run_dir: str | Path) -> list[dict[str, float | None]]:
    """Rows of the run's ``metrics.csv`` as floats (None for empty or unreadable cells);
    [] if there is no such file."""
    path = metrics_path(run_dir)
    if not path.is_file():
        return []
    rows = []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            parsed: dict[str, float | None] = {}
            for k, v in row.items():
                if k is None:
                    continue
                try:
                    parsed[k] = float(v) if v not in (None, "") else None
                except ValueError:
                    parsed[k] = None
            rows.append(parsed)
    return rows
