"""`pyrovae train --bayesian-decoder`, then evaluate (the weight KL and the predictive
log p(x)), sample --weights and analyze's epistemic split; the one-line refusals."""

from __future__ import annotations

import json
import math

import pytest

from pyrovae.cli import main

TINY = ["--epochs", "2", "--hidden", "16", "--latent-dim", "2", "--no-progress"]


@pytest.fixture(scope="module")
def bayes_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("bayes") / "run"
    argv = ["train", "--data", "digits", *TINY, "--bayesian-decoder", "--bayesian-layers", "last"]
    assert main([*argv, "--decoder-prior-scale", "0.5", "-o", str(run)]) == 0
    return run


def test_train_evaluate_sample_analyze(bayes_run, capsys, run_cli, strict_json, tmp_path):
    capsys.readouterr()
    out = strict_json(
        run_cli(
            capsys,
            [
                "evaluate",
                bayes_run,
                "--samples",
                "5",
                "--weight-draws",
                "2",
                "--output",
                tmp_path / "e",
            ],
        )
    )
    assert out["weight_kl"] > 0 and out["weight_draws"] == 2
    assert out["weight_kl_per_point"] == pytest.approx(out["weight_kl"] / out["n"])
    assert out["elbo"] == pytest.approx(out["recon"] - out["kl"], rel=1e-5)
    assert out["kl"] > out["weight_kl_per_point"]
    assert math.isfinite(out["log_likelihood"])
    res = json.loads(
        run_cli(
            capsys,
            ["sample", bayes_run, "-n", "4", "--weights", "sample", "--output", tmp_path / "s"],
        )
    )
    assert res["png"].endswith(".png")
    summary = json.loads(
        run_cli(
            capsys,
            ["analyze", bayes_run, "-n", "20", "--samples", "3", "--draws", "5"]
            + ["--mcmc-points", "0", "--sbc", "0", "--output", tmp_path / "a"],
        )
    )
    assert 0 <= summary["epistemic_ood_auroc"] <= 1
    diag = json.loads((tmp_path / "a" / "diagnostics.json").read_text())
    assert set(diag["epistemic"]) >= {"reconstructions", "prior_samples", "ood"}
    assert (tmp_path / "a" / "epistemic.png").is_file()
    # the report of a run analyzed in its own folder embeds the figure
    run_cli(
        capsys,
        ["analyze", bayes_run, "-n", "20", "--samples", "3", "--draws", "5"]
        + ["--mcmc-points", "0", "--sbc", "0"],
    )
    run_cli(capsys, ["report", bayes_run, "--output", tmp_path / "report.html"])
    assert 'alt="epistemic.png"' in (tmp_path / "report.html").read_text()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--bayesian-layers", "last"], "bayesian_layers needs bayesian_decoder"),
        (["--bayesian-decoder", "--decoder-prior-scale", "0"], "decoder_prior_scale must be > 0"),
        (["--bayesian-decoder", "--decoder-prior-scale", "-2"], "decoder_prior_scale must be > 0"),
        (["--bayesian-decoder", "--model", "ae"], "bayesian_decoder needs a model with latent"),
        (["--bayesian-decoder", "--model", "dae"], "bayesian_decoder needs a model with latent"),
        (["--bayesian-decoder", "--objective", "iwae"], "the iwae objective cannot score"),
        (["--bayesian-decoder", "--objective", "iwae-dreg"], "the iwae-dreg objective cannot"),
    ],
)
def test_refusals_are_one_line(extra, message, capsys, tmp_path):
    argv = ["train", "--data", "digits", *TINY, *extra, "-o", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "r" / "checkpoint.pt").exists()


def test_sample_weights_on_a_point_run_is_one_line(run_copy, capsys):
    assert main(["sample", str(run_copy), "-n", "2", "--weights", "sample"]) == 2
    assert "--weights sample needs a run trained with --bayesian-decoder" in capsys.readouterr().err
