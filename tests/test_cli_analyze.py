"""`pyrovae analyze RUN` writes the posterior analysis into the run folder."""

from __future__ import annotations

import json
import math

import pytest

from pyrovae import arviz_compat
from pyrovae.api import load
from pyrovae.cli import main
from pyrovae.data import load_data


def test_analyze_writes_every_output(tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--epochs",
                "3",
                "--hidden",
                "32",
                "--latent-dim",
                "2",
                "--no-progress",
                "-o",
                str(run),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert (
        main(
            [
                "analyze",
                str(run),
                "--n",
                "20",
                "--draws",
                "30",
                "--samples",
                "50",
                "--mcmc-points",
                "1",
                "--sbc",
                "100",
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    for name in (
        "posterior.nc",
        "posterior_summary.csv",
        "posterior_forest.png",
        "diagnostics.json",
        "ood.png",
        "sbc.png",
        "latent.png",
        "uncertainty.png",
    ):
        assert (run / name).exists(), name
    data = arviz_compat.from_netcdf(run / "posterior.nc")
    assert arviz_compat.group(data, "posterior")["z"].shape == (1, 30, 20, 2)
    diag = json.loads((run / "diagnostics.json").read_text())
    assert diag["decomposition"]["samples"] == 50 and len(diag["sbc"]["p_values"]) == 2
    assert len(diag["mcmc"]["khat"]) == 1 and summary["max_khat"] == max(diag["mcmc"]["khat"])
    # the AUROC's value is checked where it is known: tests/cli/test_analyze.py and
    # tests/analysis/test_uncertainty.py
    assert summary["ood_auroc"] == diag["ood"]["auroc"]
    assert diag["ood"]["reference"] == "features shuffled across rows"
    assert "mean" in (run / "posterior_summary.csv").read_text().splitlines()[0]
    # log p(x) and the gap against the API's estimates on the same 20 test points, with
    # other draws: within four standard errors of the difference of two estimates
    dec = diag["decomposition"]
    assert summary["log_likelihood"] == dec["log_likelihood"] and summary["gap"] == dec["gap"]
    assert dec["gap"] == pytest.approx(dec["log_likelihood"] - dec["elbo"], abs=1e-5)
    est, x = load(run), load_data("digits").test[:20]
    ll_a, ll_b = (est.log_likelihood(x, samples=50) for _ in range(2))
    se_ll = float((ll_a - ll_b).std() / math.sqrt(20))  # Monte Carlo only: same points
    assert abs(dec["log_likelihood"] - float(ll_a.mean())) < 4 * se_ll
    diff = ll_b - est.elbo(x, particles=10)  # the decomposition's ELBO uses 10 particles
    se_gap = float(diff.std() / math.sqrt(20))  # of the mean paired difference
    assert abs(dec["gap"] - float(diff.mean())) < 4 * math.sqrt(2) * se_gap


def test_analyze_refuses_autoencoders(tmp_path, capsys):
    run = tmp_path / "ae"
    assert (
        main(
            [
                "train",
                "--model",
                "ae",
                "--epochs",
                "1",
                "--hidden",
                "16",
                "--latent-dim",
                "2",
                "--no-progress",
                "-o",
                str(run),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["analyze", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pyrovae: error:") and "latent variables" in err and "\n" not in err


def test_select_compares_runs(tmp_path, capsys):
    runs = []
    for d in (1, 3):
        run = tmp_path / f"l{d}"
        assert (
            main(
                [
                    "train",
                    "--latent-dim",
                    str(d),
                    "--epochs",
                    "2",
                    "--hidden",
                    "16",
                    "--no-progress",
                    "-o",
                    str(run),
                ]
            )
            == 0
        )
        runs.append(str(run))
    capsys.readouterr()
    assert main(["select", *runs, "--samples", "20", "--output", str(tmp_path)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [r["run"] for r in result["rows"]] == runs
    # by hand: the decoder d -> 16 -> 64 Bernoulli logits (the N(0, I) prior has no
    # parameters), N = 1455 training images, log L = N x the mean training log p(x)
    n = 1455
    for row, d in zip(result["rows"], (1, 3), strict=True):
        k = (d * 16 + 16) + (16 * 64 + 64)
        assert row["parameters"] == k
        total = n * row["train_log_likelihood"]
        assert row["aic"] == pytest.approx(-2 * total + 2 * k, rel=1e-6)
        assert row["bic"] == pytest.approx(-2 * total + k * math.log(n), rel=1e-6)
    rows = result["rows"]
    assert result["best"] == {
        "val_log_likelihood": max(rows, key=lambda r: r["val_log_likelihood"])["label"],
        "aic": min(rows, key=lambda r: r["aic"])["label"],
        "bic": min(rows, key=lambda r: r["bic"])["label"],
    }
    assert [r["label"] for r in rows] == ["l1 (latent 1)", "l3 (latent 3)"]
    assert json.loads((tmp_path / "selection.json").read_text()) == result
    assert (tmp_path / "selection.png").stat().st_size > 1000
