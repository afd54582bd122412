"""Smoke test of the prior comparison benchmark on tiny settings."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_priors.py"


def test_tiny_run_writes_outputs(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_priors", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    result = mod.main(
        [
            "--epochs",
            "1",
            "--hidden",
            "16",
            "--latent-dim",
            "2",
            "--priors",
            "normal",
            "vamp",
            "--out",
            str(tmp_path),
        ]
    )
    saved = json.loads((tmp_path / "priors.json").read_text())
    assert [r["prior"] for r in saved["results"]] == ["normal", "vamp"]
    assert all(math.isfinite(r["val_elbo"]) and r["val_elbo"] < 0 for r in saved["results"])
    assert "| vamp |" in (tmp_path / "priors.md").read_text()
    assert result["epochs"] == 1
