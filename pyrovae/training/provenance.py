"""Where and with what a run was trained: code version and machine.

A run folder's ``run.json`` holds one record per training session (the first
``fit`` and every ``--resume``), so a run continued across machines or code
versions says so. Everything here is plain data.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

from ..runs.jsonfile import read_json, write_json
from ..runs.names import RUN_INFO


def code_version() -> dict[str, Any]:
    """pyrovae's version and, inside a git checkout, the commit and whether it was modified."""
    from .. import __version__

    out: dict[str, Any] = {"pyrovae": __version__}
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if commit.returncode == 0:
            out["git_commit"] = commit.stdout.strip()
            status = subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=10,
            )
            out["git_modified"] = bool(status.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def cpu_model() -> str:
    """CPU model name from ``/proc/cpuinfo`` (Linux), else what ``platform`` reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """The machine and software a run trained on."""
    import pyro

    info: dict[str, Any] = {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pyro": pyro.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        info["memory_gib"] = round(pages * size / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    return info


def record_session(run_dir: str | Path, **extra: Any) -> dict[str, Any]:
    """Append this training session (time, code version, machine, ``extra``) to ``run.json``."""
    path = Path(run_dir) / RUN_INFO
    info = read_json(path) or {}
    session = {
        "started": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "code": code_version(),
        "machine": machine_info(),
        **extra,
    }
    info.setdefault("sessions", []).append(session)
    write_json(path, info)
    return info
