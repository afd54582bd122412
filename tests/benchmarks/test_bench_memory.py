"""Smoke test of the peak-memory benchmark on tiny settings."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_memory.py"


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_tiny_run_writes_outputs(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_memory", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    argv = ["--rows", "400", "--hidden", "32", "--latent-dim", "4", "--samples", "50"]
    result = mod.main([*argv, "--eval-rows", "20", "--threads", "1", "--out", str(tmp_path)])
    train, evaluate = result["results"]
    assert (train["workload"], evaluate["workload"]) == ("train", "evaluate")
    for r in (train, evaluate):
        # a fresh process holding torch: between 50 MiB and 4 GiB, and peak >= baseline
        assert 50 < r["baseline_mib"] <= r["peak_mib"] < 4096
        assert r["data_mib"] == 400 * 784 * 4 / 2**20
    saved = json.loads((tmp_path / "memory.json").read_text())
    assert saved["samples"] == 50 and saved["eval_rows"] == 20
    assert "| evaluate |" in (tmp_path / "memory.md").read_text()
