"""Smoke test of the missing-data imputation benchmark on tiny settings, and its
resumption."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_missing.py"


def _module():
    spec = importlib.util.spec_from_file_location("bench_missing", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tiny_run_writes_outputs_and_resumes(tmp_path):
    mod = _module()
    argv = [
        "--rates",
        "0.3",
        "--methods",
        "mean",
        "vae",
        "--epochs",
        "2",
        "--hidden",
        "16",
        "--latent-dim",
        "2",
        "--draws",
        "20",
        "--out",
        str(tmp_path),
    ]
    mod.main(argv)
    saved = json.loads((tmp_path / "missing.json").read_text())
    assert [r["method"] for r in saved["results"]] == ["mean", "vae"]
    for r in saved["results"]:
        assert math.isfinite(r["rmse"]) and 0 <= r["coverage90"] <= 1
    assert "| 30% | vae |" in (tmp_path / "missing.md").read_text()
    again = mod.main(argv)  # everything done: nothing recomputed
    assert again["results"] == saved["results"]


def test_removal_keeps_an_entry_per_row_and_the_rate():
    mod = _module()
    x = np.zeros((2000, 5))
    holes = np.isnan(mod.remove(x, 0.5, seed=0))
    assert not holes.all(1).any()
    # each entry goes with probability 1/2; a row drawn fully missing (probability 1/32)
    # gets one entry back: expected rate 1/2 - 1/(32 * 5); the per-row counts are
    # independent, the rate's s.e. is at most sqrt(1/4 / entries)
    assert abs(holes.mean() - (0.5 - 1 / 160)) < 5 * (0.25 / holes.size) ** 0.5


def test_mean_imputation_scores_against_the_closed_form():
    mod = _module()
    truth = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])
    x_nan = truth.copy()
    x_nan[1, 0] = np.nan
    point, lo, hi, _ = mod.impute_mean(x_nan, None)
    assert point[1, 0] == 2.0  # the mean of 0 and 4
    s = mod.score(truth, x_nan, point, lo, hi)
    assert s["rmse"] == 0.0 and s["coverage90"] == 1.0 and s["n_missing"] == 1
    assert math.isclose(s["band_width90"], 2 * mod.Z90 * 2.0)  # sd of {0, 4} is 2
