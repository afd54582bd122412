"""Smoke test of the Heston benchmark on its small grid (the timings are measured there,
not asserted here)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_heston.py"


def _module():
    spec = importlib.util.spec_from_file_location("bench_heston", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tiny_run_writes_outputs(tmp_path):
    mod = _module()
    argv = ["--grid", "small", "--rounds", "1", "--threads", "1", "--out", str(tmp_path)]
    record = mod.main([*argv, "--ql-surfaces", "2", "--ql-accurate", "1"])
    saved = json.loads((tmp_path / "heston.json").read_text())
    assert saved == json.loads(json.dumps(record))
    assert saved["options"] == 16 * 3 * 21 and saved["surfaces"] == 16
    assert saved["arbitrage"]["calendar_violations"] == 0
    assert saved["arbitrage"]["butterfly_violations"] == 0
    assert "| prices + implied vols |" in (tmp_path / "heston.md").read_text()
    if saved["quantlib"] is not None:  # QuantLib is a test-only extra
        q = saved["quantlib"]
        assert q["options_timed"] == 2 * 3 * 21 and q["extrapolated"] is True
        assert q["vs_pyrovae"]["max_abs_iv_difference"] < 1e-6


@pytest.mark.parametrize(
    "argv", [["--rounds", "0"], ["--grid", "small", "--ql-surfaces", "17"], ["--ql-accurate", "-1"]]
)
def test_bad_arguments_are_rejected(argv):
    with pytest.raises(SystemExit):
        _module().parse_args(argv)


def test_the_callers_thread_count_is_restored():
    threads = torch.get_num_threads()
    argv = ["--grid", "small", "--rounds", "1", "--threads", str(threads + 1)]
    _module().main([*argv, "--ql-surfaces", "1", "--ql-accurate", "0"])
    assert torch.get_num_threads() == threads
