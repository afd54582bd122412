"""Smoke test of the log-likelihood evaluation-rate benchmark.

The benchmark's clock is replaced by a fake one on which every timed section lasts a
scripted number of seconds, so the rates, fractions, medians and the speed-up it
reports have known values (and do not depend on the machine)."""

from __future__ import annotations

import importlib.util
import json
import types
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_loglik.py"

#: FLOPs of one 1024 x 1024 matrix product, which the benchmark times as its peak rate
MATMUL_FLOPS = 2 * 1024**3

ARGS = ["--images", "3", "--samples", "20", "--hidden", "16", "--latent-dim", "2"]
FLOPS = 2 * (2 * 16 + 16 * 784)  # the decoder's, per sample


def _fake_clock(monkeypatch, mod, durations):
    """``time.perf_counter`` of ``mod`` read in (start, end) pairs: the i-th timed
    section lasts ``durations[i]`` seconds."""

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


def _rounds(evals: list[list[float]], matmul: float) -> list[float]:
    """Sections of rounds of (matmul, evaluation, matmul) per variant."""
    return [d for variants in evals for e in variants for d in (matmul, e, matmul)]


def test_rounds_of_direct_and_traced_evaluations(tmp_path, monkeypatch):
    mod = _module()
    # rounds of (direct, traced) evaluations; matmul sections of 0.25 s for 2 products
    _fake_clock(monkeypatch, mod, _rounds([[0.5, 2.0], [0.4, 1.0], [1.0, 1.5]], 0.25))
    argv = [*ARGS, "--rounds", "3", "--matmul-repeats", "2", "--threads", "1"]
    mod.main([*argv, "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "loglik.json").read_text())
    assert saved["decoder_flops_per_sample"] == FLOPS and saved["direct_switch"]
    (res,) = saved["results"]
    assert res["threads"] == 1 and len(res["rounds"]) == 3
    peak = 2 * MATMUL_FLOPS / 0.25 / 1e9
    direct, traced = res["direct"], res["traced"]
    assert direct["seconds"] == 0.5 and traced["seconds"] == 1.5  # medians
    assert direct["image_samples_per_s"] == 60 / 0.5
    assert direct["matmul_gflops"] == pytest.approx(peak, rel=1e-12)
    assert direct["fraction_of_matmul_rate"] == pytest.approx(120 * FLOPS / 1e9 / peak)
    assert traced["fraction_of_matmul_rate"] == pytest.approx(40 * FLOPS / 1e9 / peak)
    # the same seed, the same draws and the same values
    assert traced["max_abs_difference_nats"] < 1e-4
    assert "traced" in (tmp_path / "loglik.md").read_text()


def test_a_pyrovae_without_the_direct_switch_times_the_default(tmp_path, monkeypatch):
    mod = _module()

    real = mod.log_likelihood

    def old_log_likelihood(module, x, samples=5000, batch_size=100, memory=2**29):
        return real(module, x, samples=samples, batch_size=batch_size, memory=memory)

    monkeypatch.setattr(mod, "log_likelihood", old_log_likelihood)
    _fake_clock(monkeypatch, mod, _rounds([[2.0]], 0.5))
    mod.main([*ARGS, "--rounds", "1", "--matmul-repeats", "1", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "loglik.json").read_text())
    assert not saved["direct_switch"]
    (res,) = saved["results"]
    assert set(res) == {"threads", "rounds", "direct", "mean_log_likelihood"}
    assert res["direct"]["seconds"] == 2.0


def test_mixture_prior_run_compares_with_the_elementwise_density(tmp_path, monkeypatch):
    mod = _module()
    # rounds of (matrix-product density, traced, elementwise density)
    evals = [[2.0, 2.0, 4.0], [1.0, 1.0, 3.0], [0.5, 1.0, 6.0]]
    _fake_clock(monkeypatch, mod, _rounds(evals, 0.25))
    argv = [*ARGS, "--prior", "vamp", "--rounds", "3", "--matmul-repeats", "1"]
    mod.main([*argv, "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "loglik_vamp.json").read_text())
    (res,) = saved["results"]
    assert saved["prior"] == "vamp" and saved["rounds"] == 3
    assert res["direct"]["seconds"] == 1.0 and res["elementwise_mixture"]["seconds"] == 4.0
    assert res["speedup_vs_elementwise_mixture"] == 4.0
    assert res["direct"]["image_samples_per_s"] == 60.0
    # the same seed and the same density up to float rounding
    assert res["elementwise_mixture"]["max_abs_difference_nats"] < 1e-3
    assert "elementwise" in (tmp_path / "loglik_vamp.md").read_text()
