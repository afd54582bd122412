"""The run folder as a file format.

A run folder is what ``pyrovae train -o RUN`` writes and every other verb reads: the
checkpoint, the options, the training curves, the provenance, the figures and the
files of ``evaluate``, ``analyze`` and ``report``. This package owns it:

* :mod:`~pyrovae.runs.names`: every file name, as a constant;
* :mod:`~pyrovae.runs.metrics`: ``metrics.csv`` (write and read);
* :mod:`~pyrovae.runs.config`: ``config.toml`` (write and read);
* :mod:`~pyrovae.runs.jsonfile`: the JSON files (strict JSON, atomic writes);
* :mod:`~pyrovae.runs.data`: what a checkpoint records about its data, and loading
  that data again (not imported here: it needs torch and the data layer, which the
  command line loads only when a verb needs them);
* :mod:`~pyrovae.runs.lock`: one writer per run folder (``run.lock``).

Every write is atomic (:mod:`pyrovae.atomic`: temporary file, fsync, rename). The
checkpoint's own format is :mod:`pyrovae.training.checkpoint`.
"""

from ..atomic import atomic_write_bytes, atomic_write_text
from . import names
from .config import read_config, read_raw_config, to_toml, write_config
from .jsonfile import read_json, to_json, write_json
from .lock import hold, read_holder
from .metrics import METRIC_COLUMNS, read_metrics, write_metrics

__all__ = [
    "METRIC_COLUMNS",
    "atomic_write_bytes",
    "atomic_write_text",
    "hold",
    "names",
    "read_config",
    "read_holder",
    "read_json",
    "read_metrics",
    "read_raw_config",
    "to_json",
    "to_toml",
    "write_config",
    "write_json",
    "write_metrics",
]
