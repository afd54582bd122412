"""The run folder sits low in the layering: ``pyrovae.runs`` imports only errors,
config, the atomic writes and the data layer; ``pyrovae.atomic`` imports nothing of
pyrovae (so that the data layer can write through it)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pyrovae

PACKAGE = Path(pyrovae.__file__).resolve().parent
ALLOWED = {"errors", "config", "atomic", "data", "runs"}


def _pyrovae_imports(path: Path) -> set[str]:
    """The pyrovae modules ``path`` imports (anywhere in it, functions included), as
    dotted names below ``pyrovae``."""
    package = path.relative_to(PACKAGE).parent.parts
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - node.level + 1])
                target = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").startswith("pyrovae"):
                target = node.module.removeprefix("pyrovae").lstrip(".")
            else:
                continue
            for alias in node.names:
                found.add(f"{target}.{alias.name}" if target else alias.name)
        elif isinstance(node, ast.Import):
            found |= {
                a.name.removeprefix("pyrovae.") for a in node.names if a.name.startswith("pyrovae")
            }
    return found


def test_runs_imports_only_lower_layers():
    for path in sorted((PACKAGE / "runs").glob("*.py")):
        bad = {m for m in _pyrovae_imports(path) if m.split(".")[0] not in ALLOWED}
        assert not bad, f"{path.name} imports {sorted(bad)}"


def test_atomic_imports_nothing_of_pyrovae():
    assert _pyrovae_imports(PACKAGE / "atomic.py") == set()


def test_the_import_scan_sees_relative_imports():
    assert "training.checkpoint.save_checkpoint" in _pyrovae_imports(
        PACKAGE / "training" / "trainer.py"
    )
    assert "runs.names.CHECKPOINT" in _pyrovae_imports(PACKAGE / "api.py")


def test_the_command_line_starts_without_torch():
    """``pyrovae --help`` stays quick: importing the CLI and the run folder's modules
    (all but runs.data) loads neither torch nor the data layer."""
    code = (
        "import sys, pyrovae.cli, pyrovae.runs; "
        "print(sorted(m for m in ('torch', 'pyrovae.data') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={"PYTHONPATH": str(PACKAGE.parent), "PATH": ""},
    )  # fmt: skip
    assert out.stdout.strip() == "[]"
