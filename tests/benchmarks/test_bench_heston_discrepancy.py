"""The discrepancy experiment of the Heston benchmark: its Gaussian conditional against
the closed form on a linear decoder, and a smoke run on the small grid."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pyrovae.inference import conformal_quantile

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _module(name: str):
    sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _linear_problem(seed: int, d: int, n_observed: int):
    """A linear decoder m(z) = A z + b (z of 4 dimensions; one z or a batch), a
    covariance Σ, a row x and the observed / hidden masks of its first ``n_observed``
    cells."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, 4, generator=g, dtype=torch.float64)
    b = torch.randn(d, generator=g, dtype=torch.float64)
    root = torch.randn(d, d, generator=g, dtype=torch.float64)
    cov = root @ root.T / d + 0.1 * torch.eye(d, dtype=torch.float64)
    x = torch.randn(d, generator=g, dtype=torch.float64)
    observed = torch.zeros(d, dtype=torch.bool)
    observed[:n_observed] = True

    def mean_fn(z):
        return (z.double() @ a.T + b).to(z.dtype)

    return a, b, cov, x, observed, ~observed, mean_fn


@pytest.mark.parametrize(
    "how, steps, atol",
    [
        ({}, 3000, 2e-3),  # Adam's fixed step leaves z within about lr of the optimum
        ({"optimizer": "lbfgs", "dtype": torch.float64}, 100, 1e-6),
    ],
)
def test_map_and_conditional_match_the_closed_form_on_a_linear_decoder(how, steps, atol):
    """m(z) = A z + b, x_o ~ N(m_o(z), Σ_oo), z ~ N(0, I): the MAP z is the generalized
    least-squares solution (A_oᵀ Σ_oo⁻¹ A_o + I)⁻¹ A_oᵀ Σ_oo⁻¹ (x_o - b_o), and the hidden
    cells' mean and sd are the Gaussian conditional's at that z."""
    mod = _module("bench_heston_discrepancy")
    a, b, cov, x, observed, hidden, mean_fn = _linear_problem(0, 12, 7)

    z, m, mu, sd = mod.fit_pattern(mean_fn, x, observed, hidden, cov, steps=steps, **how)
    assert z.dtype == how.get("dtype", torch.float32)
    ao, so = a[observed], cov[observed][:, observed]
    prec = ao.T @ torch.linalg.solve(so, ao) + torch.eye(4, dtype=torch.float64)
    z_star = torch.linalg.solve(prec, ao.T @ torch.linalg.solve(so, x[observed] - b[observed]))
    torch.testing.assert_close(z.double(), z_star, atol=atol, rtol=0)
    m_star = mean_fn(z).double()  # the decoder's float32 output at the MAP z
    torch.testing.assert_close(m, m_star, atol=0, rtol=0)
    cross = cov[hidden][:, observed]
    mu_star = m_star[hidden] + cross @ torch.linalg.solve(so, x[observed] - m_star[observed])
    var_star = torch.diagonal(cov[hidden][:, hidden] - cross @ torch.linalg.solve(so, cross.T))
    torch.testing.assert_close(mu, mu_star, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sd, var_star.sqrt(), atol=1e-10, rtol=1e-8)


def test_batched_patterns_are_the_separate_fits():
    """One Adam run over several patterns' stacked z gives each pattern's own fit: the
    update is elementwise and each z enters only its own loss."""
    mod = _module("bench_heston_discrepancy")
    a, b, cov, x, observed, hidden, mean_fn = _linear_problem(1, 12, 7)
    other = torch.zeros_like(observed)
    other[4:] = True  # another pattern, with its own (scaled) covariance
    patterns = [(observed, hidden, cov), (other, ~other, 1.7 * cov)]
    batched = mod.fit_patterns(mean_fn, x, *map(list, zip(*patterns, strict=True)), steps=200)
    assert len(batched) == 2
    for (o, h, c), together in zip(patterns, batched, strict=True):
        alone = mod.fit_pattern(mean_fn, x, o, h, c, steps=200)
        for u, v in zip(together, alone, strict=True):
            torch.testing.assert_close(u, v, atol=1e-5, rtol=1e-5)
    # the two patterns' fits differ, so the test compares two different problems
    assert not torch.allclose(batched[0][0], batched[1][0], atol=1e-3)


def test_tiny_run_on_the_small_grid(tmp_path):
    fit = _module("bench_heston_fit")
    argv = ["--grid", "small", "--surfaces", "1", "--epochs", "2", "--pricer-epochs", "1"]
    argv += ["--adam-steps", "5", "--pricer-steps", "3", "--warmup", "3", "--draws", "4"]
    fit.main([*argv, "--laplace-draws", "5", "--prior-samples", "8", "--out", str(tmp_path)])
    mod = _module("bench_heston_discrepancy")
    argv = ["--grid", "small", "--surfaces", "2", "--steps", "5", "--out", str(tmp_path)]
    argv += ["--val-surfaces", "6"]
    record = mod.main([*argv, "--eps", "1e-7", "1e-5", "auto"])
    assert record["surfaces_done"] == 2
    assert record["auto_nugget"] > 0  # chosen by the validation surfaces' likelihood
    for eps in ("1e-07", "1e-05", "'auto'"):
        first = record["surfaces"][0]["eps"][eps]
        assert first["rmse_hidden"][0] is None  # nothing hidden with every cell observed
        assert all(0 <= c <= 1 for c in first["coverage90"][1:])
    saved = json.loads((tmp_path / "heston_discrepancy.json").read_text())
    assert set(saved["validation_loglik"]) == {"1e-07", "1e-05", "'auto'"}
    assert "| hide90 |" in (tmp_path / "heston_discrepancy.md").read_text()
    # z by NUTS under the same likelihood, through pyrovae's conditioning API, with the
    # nugget's scale sampled per surface; one JSON per surface, and a rerun resumes
    nuts = ["--method", "nuts", "--warmup", "3", "--draws", "4", "--name", "nuts"]
    nuts += ["--eps", "1e-7", "--scale", "nugget"]
    record = mod.main([*argv[:2], "--surfaces", "1", *argv[4:], *nuts])
    first = record["surfaces"][0]["eps"]["1e-07"]
    assert first["coverage90"][0] is None and all(0 <= c <= 1 for c in first["coverage90"][1:])
    assert all(s > 0 for s in first["scale_mean"]) and len(first["divergences"]) == 4
    assert (tmp_path / "nuts.json").exists()
    saved = sorted((tmp_path / "nuts").glob("surface-*.json"))
    assert len(saved) == 1
    again = mod.main([*argv[:2], "--surfaces", "1", *argv[4:], *nuts, "--reverse"])
    assert again["surfaces"] == record["surfaces"]  # resumed, from either end
    # S from out-of-sample surfaces with random parameters instead of the training ones
    oos = ["--reference", "random", "--ref-surfaces", "8", "--name", "oos", "--eps", "auto"]
    record = mod.main([*argv[:2], "--surfaces", "1", *argv[4:], *oos])
    assert record["settings"]["reference"] == "random" and record["auto_nugget"] > 0
    with pytest.raises(SystemExit):  # the reference surfaces must be other surfaces
        mod.parse_args(["--reference", "random", "--ref-seed", "2026"])
    # the scale calibrated per pattern on the validation surfaces: the same surface and
    # MAP, with bands of ŝ Σ
    cal = [*oos[:4], "--name", "cal", "--eps", "auto", "--scale", "calibrated"]
    calibrated = mod.main([*argv[:2], "--surfaces", "1", *argv[4:], *cal])
    assert calibrated["settings"]["scale"] == "calibrated"
    assert calibrated["auto_nugget"] == record["auto_nugget"]  # the same S and ε
    got = calibrated["surfaces"][0]["eps"]["'auto'"]
    assert got["coverage90"][0] is None and len(got["rmse_hidden"]) == 5
    # the band's z per pattern from the validation surfaces' standardized errors (all
    # their hidden cells kept): a score is within 1.645 exactly when the 1.645 band
    # covers the cell, and z is pyrovae's conformal quantile of the scores
    conf = [*oos[:4], "--name", "conf", "--scale", "conformal", "--cal-surfaces", "10"]
    record = mod.main([*argv[:2], "--surfaces", "1", *argv[4:], *conf, "--cal-cells", "9999"])
    cal = [
        json.loads(f.read_text())["record"]["eps"]["'auto'"]
        for f in sorted((tmp_path / "conf").glob("calibration-*.json"))
    ]
    assert len(cal) == 10
    for c in cal:
        for score, cover in zip(c["scores"][1:], c["coverage90"][1:], strict=True):
            inside = np.mean(np.asarray(score) <= mod.Z90)
            assert abs(inside - cover) <= 1.5 / len(score)  # 4 digits: one borderline cell
    for j in range(1, 5):
        rows = [c["scores"][j] for c in cal]
        groups = np.repeat(np.arange(10), [len(r) for r in rows])
        want = conformal_quantile(np.concatenate(rows), 0.9, groups=groups)
        assert record["conformal_z"]["'auto'"][j] == want
    assert all(0 <= c <= 1 for c in record["surfaces"][0]["eps"]["'auto'"]["coverage90"][1:])
    with pytest.raises(SystemExit):  # the conformal band is the MAP plug-in's
        mod.parse_args(["--scale", "conformal", "--method", "nuts"])
    # the pricer decoder (rows in implied vol) with z from the Laplace approximation
    pricer = ["--model", "pricer", "--method", "laplace", "--draws", "6", "--name", "pricer"]
    record = mod.main([*argv[:2], "--surfaces", "1", *argv[4:], *oos[:4], *pricer])
    first = record["surfaces"][0]["eps"]["'auto'"]
    assert record["settings"]["model"] == "pricer" and record["auto_nugget"] > 0
    assert first["coverage90"][0] is None and all(0 <= c <= 1 for c in first["coverage90"][1:])
    assert all(r >= 0 for r in first["rmse_hidden"][1:])
    # its MAP by L-BFGS with the decoder in float64
    exact = ["--model", "pricer", "--optimizer", "lbfgs", "--float64", "--name", "pricer64"]
    record = mod.main([*argv[:2], "--surfaces", "1", *argv[4:], *oos[:4], *exact])
    assert record["settings"]["float64"] and record["settings"]["optimizer"] == "lbfgs"
    first = record["surfaces"][0]["eps"]["'auto'"]
    assert all(0 <= c <= 1 for c in first["coverage90"][1:])
    with pytest.raises(SystemExit):  # the training rows are the MLP's units
        mod.parse_args(["--model", "pricer"])
    for bad in (["--float64"], ["--model", "pricer", "--float64", "--method", "nuts"]):
        with pytest.raises(SystemExit):  # float64 is the pricer's MAP and Laplace fits'
            mod.parse_args(["--reference", "random", *bad])


def test_laplace_draws_match_the_exact_predictive_on_a_linear_decoder():
    """For m(z) = A z + b the Laplace approximation is the exact posterior
    N(z*, H⁻¹), H = A_oᵀ Σ_oo⁻¹ A_o + I, and the hidden cells' predictive is Gaussian
    with mean m_h(z*) + G (x_o − m_o(z*)) and covariance
    Σ_hh − G Σ_oh + (A_h − G A_o) H⁻¹ (A_h − G A_o)ᵀ, G = Σ_ho Σ_oo⁻¹: the draws'
    mean and covariance agree within their Monte Carlo error; observed cells keep x."""
    mod = _module("bench_heston_discrepancy")
    a, b, cov, x, observed, hidden, mean_fn = _linear_problem(1, 10, 6)

    n = 20000
    rows = mod.laplace_pattern(mean_fn, x, observed, hidden, cov, 3000, n, seed=0)
    assert torch.equal(rows[:, observed], x[observed].expand(n, -1))
    ao, ah, so = a[observed], a[hidden], cov[observed][:, observed]
    h = ao.T @ torch.linalg.solve(so, ao) + torch.eye(4, dtype=torch.float64)
    z_star = torch.linalg.solve(h, ao.T @ torch.linalg.solve(so, x[observed] - b[observed]))
    gain = torch.linalg.solve(so, cov[observed][:, hidden]).T
    mean = ah @ z_star + b[hidden] + gain @ (x[observed] - ao @ z_star - b[observed])
    lift = ah - gain @ ao
    want = cov[hidden][:, hidden] - gain @ cov[observed][:, hidden]
    want = want + lift @ torch.linalg.solve(h, lift.T)
    draws = rows[:, hidden]
    sd = torch.diagonal(want).sqrt()
    assert ((draws.mean(0) - mean).abs() < 4 * sd / n**0.5 + 1e-3).all()
    got = torch.cov(draws.T)
    # the sample variance's sd is about var * sqrt(2 / n)
    assert (
        (torch.diagonal(got) - torch.diagonal(want)).abs()
        < 4 * torch.diagonal(want) * (2 / n) ** 0.5
    ).all()
    corr = got / torch.outer(sd, sd)
    assert ((corr - want / torch.outer(sd, sd)).abs() < 4 / n**0.5 + 1e-3).all()
