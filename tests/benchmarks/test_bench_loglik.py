"""Smoke test of the log-likelihood evaluation-rate benchmark."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_loglik.py"


def test_tiny_run_writes_outputs(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_loglik", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main(
        [
            "--images",
            "3",
            "--samples",
            "20",
            "--hidden",
            "16",
            "--latent-dim",
            "2",
            "--out",
            str(tmp_path),
        ]
    )
    saved = json.loads((tmp_path / "loglik.json").read_text())
    assert saved["image_samples_per_s"] > 0 and 0 < saved["fraction_of_matmul_rate"]
    assert saved["decoder_flops_per_sample"] == 2 * (2 * 16 + 16 * 784)
    assert "GFLOP/s" in (tmp_path / "loglik.md").read_text()
