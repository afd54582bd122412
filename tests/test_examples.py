"""Every script in examples/ runs to completion (with a tiny training budget)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))

#: Command-line arguments that shrink an example's sizes beyond its training epochs.
TINY_ARGS = {
    "prior_vae_gp.py": "--train 200 --hidden 16 --latent-dim 2 --warmup 20 --samples 20".split(),
}


def test_examples_exist():
    assert EXAMPLES, "no example scripts found in examples/"
    assert set(TINY_ARGS) <= {p.name for p in EXAMPLES}


@pytest.mark.slow
@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(script: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYROVAE_EXAMPLE_EPOCHS": "2", "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, str(script), *TINY_ARGS.get(script.name, [])],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (
        f"{script.name} exited with {proc.returncode}\n"
        f"--- stdout ---\n{proc.stdout[-3000:]}\n--- stderr ---\n{proc.stderr[-3000:]}"
    )
    assert proc.stdout.strip(), f"{script.name} printed nothing"
