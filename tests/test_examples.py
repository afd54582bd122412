"""Every script in examples/ runs to completion (with a tiny training budget)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))

#: Command-line arguments that shrink an example's sizes beyond its training epochs.
TINY_ARGS = {
    "comparison_study.py": "--hidden 16 --samples 10 -n 50".split(),
    "prior_vae_gp.py": "--train 200 --hidden 16 --latent-dim 2 --warmup 20 --samples 20".split(),
    "tutorial_figures.py": (
        "--hidden 16 --train 200 --test 20 --samples 100 --grid 41 --draws 1000".split()
    ),
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


@pytest.mark.slow
def test_heston_example_on_tiny_settings(tmp_path: Path) -> None:
    """The Heston workflow on a small grid: training curves, latent walk, Adam fit and
    NUTS calibration figures, and a summary whose numbers are finite and in range."""
    script = Path(__file__).resolve().parents[1] / "examples" / "heston_surfaces.py"
    args = ["--tiny", "--epochs", "3", "--warmup", "10", "--draws", "10", "--out", "figs"]
    proc = subprocess.run(
        [sys.executable, str(script), *args],
        cwd=tmp_path,
        env={**os.environ, "MPLBACKEND": "Agg"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout[proc.stdout.index("{") :])
    assert summary["grid"] == "tiny" and summary["epochs"] == 3
    for name in ("heston_training.png", "heston_walk.png", "heston_calibration.png"):
        assert (tmp_path / "figs" / name).stat().st_size > 0
    assert summary["gif"] == (tmp_path / "figs" / "heston_walk.gif").exists()
    assert 0 < summary["observed_cells"] < 41
    # the model conditioned through est.condition(method="nuts"), and with the decoder's
    # validation error as the noise level
    for method in ("condition_nuts", "nuts_validation_noise"):
        assert 0 <= summary[f"{method}_band90_coverage_hidden"] <= 1
        assert summary[f"{method}_rmse_vol_points_hidden"] >= 0
    assert summary["condition_nuts_diagnostics"]["method"] == "nuts"
    assert summary["adam_rmse_vol_points_all_observed"] >= 0
