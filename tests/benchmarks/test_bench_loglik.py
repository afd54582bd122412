"""Smoke test of the log-likelihood evaluation-rate benchmark.

The benchmark's clock is replaced by a fake one on which every timed section lasts a
scripted number of seconds, so the rates and the speed-up it reports have known values
(and do not depend on the machine)."""

from __future__ import annotations

import importlib.util
import json
import types
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_loglik.py"

#: FLOPs of a 1024 x 1024 matrix product, which the benchmark times as its peak rate
MATMUL_FLOPS = 2 * 1024**3


def _fake_clock(monkeypatch, mod, durations):
    """``time.perf_counter`` of ``mod`` read in (start, end) pairs: the i-th timed
    section lasts ``durations[i]`` seconds (the matmul timings last after them)."""

    def reads():
        t = 0.0
        for d in durations:
            yield t
            t += d
            yield t

    it = reads()
    monkeypatch.setattr(mod, "time", types.SimpleNamespace(perf_counter=lambda: next(it)))


def _module():
    spec = importlib.util.spec_from_file_location("bench_loglik", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tiny_run_writes_outputs(tmp_path, monkeypatch):
    mod = _module()
    # one evaluation of 0.5 s, then five matrix products of 0.25 s each
    _fake_clock(monkeypatch, mod, [0.5] + [0.25] * 5)
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
    flops = 2 * (2 * 16 + 16 * 784)
    assert saved["decoder_flops_per_sample"] == flops
    assert saved["seconds"] == 0.5
    assert saved["image_samples_per_s"] == 3 * 20 / 0.5
    assert saved["matmul_gflops"] == pytest.approx(MATMUL_FLOPS / 0.25 / 1e9, rel=1e-12)
    assert saved["achieved_gflops"] == pytest.approx(120 * flops / 1e9, rel=1e-12)
    assert saved["fraction_of_matmul_rate"] == pytest.approx(
        120 * flops / (MATMUL_FLOPS / 0.25), rel=1e-12
    )
    assert "GFLOP/s" in (tmp_path / "loglik.md").read_text()


def test_mixture_prior_run_compares_with_the_elementwise_density(tmp_path, monkeypatch):
    mod = _module()
    # three rounds of (matrix-product density, elementwise density): medians 1 s and 4 s
    _fake_clock(monkeypatch, mod, [2.0, 4.0, 1.0, 3.0, 0.5, 6.0] + [0.25] * 5)
    args = ["--images", "3", "--samples", "20", "--hidden", "16", "--latent-dim", "2"]
    mod.main([*args, "--prior", "vamp", "--rounds", "3", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "loglik_vamp.json").read_text())
    assert saved["prior"] == "vamp" and saved["rounds"] == 3
    assert saved["seconds"] == 1.0 and saved["elementwise_seconds"] == 4.0
    assert saved["speedup_vs_elementwise_mixture"] == 4.0
    assert saved["image_samples_per_s"] == 60.0
    # the same seed and the same density up to float rounding
    assert saved["max_abs_difference_nats"] < 1e-3
    assert "elementwise" in (tmp_path / "loglik_vamp.md").read_text()
