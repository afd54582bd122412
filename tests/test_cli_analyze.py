"""`pyrovae analyze RUN` writes the posterior analysis into the run folder."""

from __future__ import annotations

import json

from pyrovae import arviz_compat
from pyrovae.cli import main


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
    assert 0.0 <= diag["ood"]["auroc"] <= 1.0 and len(diag["mcmc"]["khat"]) == 1
    assert summary["log_likelihood"] >= summary["elbo"] - 1.0
    assert "mean" in (run / "posterior_summary.csv").read_text().splitlines()[0]


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
    assert result["rows"][1]["parameters"] > result["rows"][0]["parameters"]
    assert set(result["best"]) == {"val_log_likelihood", "aic", "bic"}
    assert (tmp_path / "selection.png").exists() and (tmp_path / "selection.json").exists()
