"""Smoke test of the Bayesian-decoder benchmark on tiny settings: it writes one JSON per
setting, skips settings already written (resumable) and summarizes them."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_bayes_decoder.py"


def _module():
    spec = importlib.util.spec_from_file_location("bench_bayes_decoder", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


TINY = [
    "--sizes", "40", "--seeds", "0", "--hidden", "8", "--latent-dim", "2", "--steps", "4",
    "--samples", "3", "--weight-draws", "2", "--split-draws", "2", "--rounds", "1",
    "--throughput-epochs", "1",
]  # fmt: skip


def test_tiny_run_writes_outputs_and_resumes(tmp_path):
    mod = _module()
    assert mod.main([*TINY, "--out", str(tmp_path)]) == 0
    fits = sorted(p.name for p in tmp_path.glob("fit_*.json"))
    assert fits == ["fit_all_n40_s0.json", "fit_last_n40_s0.json", "fit_point_n40_s0.json"]
    rec = json.loads((tmp_path / "fit_all_n40_s0.json").read_text())
    assert rec["n"] == 40 and rec["nll"] > 0 and rec["weight_kl"] > 0
    assert set(rec["ood"]) == {"inverted", "flipped"} and "epistemic" in rec["ood"]["flipped"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary["rows"]) == 3 and set(summary["throughput"]["median_ratio_to_point"]) == {
        "point",
        "all",
        "last",
    }
    assert "| 40 | last | 1 |" in (tmp_path / "summary.md").read_text()
    before = (tmp_path / "fit_all_n40_s0.json").stat().st_mtime_ns
    assert mod.main([*TINY, "--out", str(tmp_path)]) == 0
    assert (tmp_path / "fit_all_n40_s0.json").stat().st_mtime_ns == before
