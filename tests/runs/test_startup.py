"""The run folder's modules (all but ``runs.data``) load without torch or the data
layer, so that the command line starts quickly (``pyrovae --help``). Its place in the
layering is an import-linter contract (pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyrovae

ROOT = Path(pyrovae.__file__).resolve().parents[1]


def test_the_command_line_and_the_run_folder_load_without_torch():
    code = (
        "import sys, pyrovae.cli, pyrovae.runs, pyrovae.runs.lock; "
        "print(sorted(m for m in ('torch', 'pyrovae.data') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
    )  # fmt: skip
    assert out.stdout.strip() == "[]"
    loaded = subprocess.run(  # the check itself: runs.data does load them
        [sys.executable, "-c", code.replace("pyrovae.runs.lock", "pyrovae.runs.data")],
        capture_output=True, text=True, check=True, env={"PYTHONPATH": str(ROOT), "PATH": ""},
    )  # fmt: skip
    assert loaded.stdout.strip() == "['pyrovae.data', 'torch']"
