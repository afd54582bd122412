"""Smoke test of the M2 benchmark on tiny settings: one JSON per setting, resumable, and a
clear record when MNIST's files are missing."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_m2.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_m2", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tiny_run_writes_one_file_per_setting_and_resumes(tmp_path):
    mod = _bench()
    argv = ["--labels", "10", "--draws", "2", "--epochs", "1", "--hidden", "16"]
    argv += ["--latent-dim", "2", "--rounds", "2", "--steps", "1", "--out", str(tmp_path)]
    first = mod.main(argv)
    assert sorted(first["written"]) == [
        "error-digits-n10-draw0.json",
        "error-digits-n10-draw1.json",
        "throughput-digits-b128.json",
    ]
    record = json.loads((tmp_path / "error-digits-n10-draw0.json").read_text())
    assert record["labelled_per_class"] == [1] * 10
    for key in ("m2_error", "logreg_error", "mlp_error"):
        assert 0 <= record[key] <= 1
    tp = json.loads((tmp_path / "throughput-digits-b128.json").read_text())
    assert math.isfinite(tp["ratio_m2_over_vae"]["median"])
    assert "| 10 | 2 |" in (tmp_path / "digits.md").read_text()
    assert mod.main(argv)["written"] == []  # every setting done: nothing rerun


def test_missing_mnist_is_reported(tmp_path):
    out = _bench().main(
        ["--data", "mnist", "--data-root", str(tmp_path / "none"), "--out", str(tmp_path)]
    )
    assert "missing" in out
    assert json.loads((tmp_path / "missing-mnist.json").read_text())["data"] == "mnist"
