"""Smoke test of the multi-process efficiency benchmark on tiny settings."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_nproc.py"


def _load():
    spec = importlib.util.spec_from_file_location("bench_nproc", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tiny_run_writes_consistent_outputs(tmp_path):
    mod = _load()
    argv = ["--batches", "32", "--rows", "128", "--epochs", "2", "--rounds", "1"]
    record = mod.main([*argv, "--reduce-reps", "3", "--out", str(tmp_path)])
    r = record["results"][32]
    (rnd,) = r["rounds"]
    # one thread per rank and per lone rank; two in the single process
    assert rnd["threads"]["threads"] == 2
    assert rnd["nproc"]["threads"] == 1 and rnd["nproc"]["world"] == 2
    assert rnd["rank_alone"]["threads"] == rnd["pair"]["threads"] == 1
    assert rnd["pair"]["rate"] > 0 and r["flags_all_reduce_ms"]["median"] > 0
    # the parameters all-reduced are the VAE's: 784-400-(2 x 50) encoder, 50-400-784 decoder
    want = (784 * 400 + 400) + (400 * 100 + 100) + (50 * 400 + 400) + (400 * 784 + 784)
    assert r["parameters"] == rnd["nproc"]["parameters"] == want
    assert r["ideal_rate"]["median"] == pytest.approx(2 * rnd["rank_alone"]["rate"])
    assert r["nproc_over_threads"]["median"] == pytest.approx(
        rnd["nproc"]["rate"] / rnd["threads"]["rate"]
    )
    steps_per_s = rnd["nproc"]["rate"] / 32
    assert r["all_reduce_share_of_step"]["median"] == pytest.approx(
        steps_per_s * rnd["nproc"]["all_reduce_s"]
    )
    assert json.loads((tmp_path / "nproc.json").read_text())["rows"] == 128
    assert "| 32 |" in (tmp_path / "nproc.md").read_text()


def test_bad_settings_are_refused():
    mod = _load()
    with pytest.raises(SystemExit):
        mod.parse_args(["--batches", "1024", "--rows", "100"])
