"""Smoke test of the held-out Heston fit benchmark on its small grid: the per-surface
records, the resumed run and the summary (the figures are measured on the notes' grid,
not asserted here)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_heston_fit.py"


def _module():
    spec = importlib.util.spec_from_file_location("bench_heston_fit", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tiny_run_writes_resumable_records(tmp_path):
    mod = _module()
    argv = ["--grid", "small", "--surfaces", "1", "--epochs", "2", "--pricer-epochs", "1"]
    argv += ["--adam-steps", "5", "--pricer-steps", "3", "--warmup", "3", "--draws", "4"]
    argv += ["--laplace-draws", "5", "--prior-samples", "8", "--out", str(tmp_path)]
    record = mod.main(argv)
    folder = tmp_path / "heston_fit"
    surface = json.loads((folder / "surface-2026-000.json").read_text())
    assert surface["patterns"] == list(mod.PATTERNS)
    assert surface["observed_cells"][0] >= max(surface["observed_cells"][1:])
    for method in ("adam", "nuts", "pricer"):
        assert len(surface[method]["rmse"]) == len(mod.PATTERNS)
        assert surface[method]["rmse_hidden"][0] is None  # nothing hidden
    assert all(0 <= c <= 1 for c in surface["nuts"]["coverage90"][1:])
    assert record["arbitrage"]["pricer"]["surfaces_with_violations"] == 0
    assert record["surfaces_done"] == 1
    saved = json.loads((tmp_path / "heston_fit.json").read_text())
    assert saved["summary"] == json.loads(json.dumps(record["summary"]))
    # a second run resumes: the models and the surface are read back, not redone
    stamp = (folder / "surface-2026-000.json").stat().st_mtime_ns
    again = mod.main([*argv[:2], "--surfaces", "2", *argv[4:]])
    assert (folder / "surface-2026-000.json").stat().st_mtime_ns == stamp
    assert again["surfaces_done"] == 2
    assert "| hide90 |" in (tmp_path / "heston_fit.md").read_text()
