"""Smoke test of the PriorVAE benchmark on tiny settings, and its resumption."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_priorvae.py"

TINY = (
    "--train 100 --epochs 1 --hidden 8 --latent-dim 2 --warmup 5 --samples 10 --functions 2 "
    "--timed 1 --gp-lengthscale"
).split()


def load():
    spec = importlib.util.spec_from_file_location("bench_priorvae", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tiny_run_writes_outputs_and_resumes(tmp_path):
    mod = load()
    argv = [*TINY, "--work", str(tmp_path / "work"), "--out", str(tmp_path)]
    result = mod.main(argv)
    saved = json.loads((tmp_path / "priorvae.json").read_text())
    assert [r["function"] for r in saved["functions"]] == [0, 1]
    first = saved["functions"][0]
    assert {"seconds_gp", "seconds_gp_ls", "rmse_mean_gp_nuts"} <= set(first)
    assert "seconds_gp" not in saved["functions"][1]  # only --timed functions run the GP
    s = result["summary"]
    assert s["functions"] == 2 and s["timed_gp"] == 1 and s["timed_gp_ls"] == 1
    assert all(math.isfinite(s[k]) for k in ("rmse_mean", "coverage_90", "speedup_gp_median"))
    assert 0 <= s["coverage_90"] <= 1
    assert "| 90 % band coverage, PriorVAE |" in (tmp_path / "priorvae.md").read_text()
    # a rerun with one more function computes only that one, with the saved VAE
    again = mod.main([*argv, "--functions", "3"])
    assert [r["function"] for r in again["functions"]] == [0, 1, 2]
    assert again["functions"][:2] == saved["functions"]


def test_exact_posterior_is_the_conditional_gaussian():
    """The closed-form GP posterior against the joint Gaussian conditioned directly."""
    import torch

    ex = load().example()
    t = ex.grid(20)
    idx, y, noise = torch.tensor([2, 7, 15]), torch.tensor([0.3, -0.5, 1.0]), 0.2
    mean, cov = ex.exact_posterior(t, 0.2, idx, y, noise)
    k = ex.rbf(t.double(), 0.2) + ex.JITTER * torch.eye(20, dtype=torch.float64)
    # joint of (f, y): precision form p(f | y) ∝ N(f; 0, K) N(y; f[idx], noise^2)
    h = torch.zeros(3, 20, dtype=torch.float64)
    h[torch.arange(3), idx] = 1.0
    prec = torch.linalg.inv(k) + h.T @ h / noise**2
    cov2 = torch.linalg.inv(prec)
    mean2 = cov2 @ h.T @ y.double() / noise**2
    torch.testing.assert_close(mean, mean2, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(cov, cov2, atol=1e-6, rtol=1e-5)
