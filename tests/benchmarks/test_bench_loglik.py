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


def test_mixture_prior_run_compares_with_the_elementwise_density(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_loglik", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    args = ["--images", "3", "--samples", "20", "--hidden", "16", "--latent-dim", "2"]
    mod.main([*args, "--prior", "vamp", "--rounds", "1", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "loglik_vamp.json").read_text())
    assert saved["prior"] == "vamp" and saved["rounds"] == 1
    assert saved["elementwise_seconds"] > 0 and saved["speedup_vs_elementwise_mixture"] > 0
    # the same seed and the same density up to float rounding
    assert saved["max_abs_difference_nats"] < 1e-3
    assert "elementwise" in (tmp_path / "loglik_vamp.md").read_text()
