"""`pyrovae evaluate RUN`: the held-out ELBO and its terms as JSON, to the run folder or
--output."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pyrovae.cli import main


def test_evaluate(run_copy, capsys, run_cli, strict_json):
    result = strict_json(run_cli(capsys, ["evaluate", run_copy, "--particles", "2"]))
    assert json.loads((run_copy / "evaluation.json").read_text()) == result
    assert result["split"] == "test" and result["n"] == 180 and result["model"] == "vae"
    for key in ("elbo", "recon", "kl", "elbo_se", "recon_se", "kl_se"):
        assert math.isfinite(result[key]), key
    assert result["elbo"] == pytest.approx(result["recon"] - result["kl"], rel=1e-5)
    assert result["kl"] >= 0 and result["elbo"] < 0


def test_evaluate_other_split_to_other_file(run_copy, tmp_path, capsys, run_cli, strict_json):
    out = tmp_path / "reports" / "val.json"
    result = strict_json(
        run_cli(capsys, ["evaluate", run_copy / "checkpoint.pt", "--split", "val", "--output", out])
    )
    assert result["split"] == "val" and result["n"] == 162
    assert json.loads(out.read_text()) == result
    assert not (run_copy / "evaluation.json").exists()


def test_samples_adds_log_px_and_seed_reproduces_it(run_copy, tmp_path, capsys, run_cli):
    def evaluate(name, seed):
        argv = ["evaluate", run_copy, "--samples", "20", "--particles", "2", "--seed", seed]
        return json.loads(run_cli(capsys, [*argv, "--output", tmp_path / name]))

    a, b, c = evaluate("a", 1), evaluate("b", 1), evaluate("c", 2)
    assert a == b and a["samples"] == 20 and a["log_likelihood"] != c["log_likelihood"]
    # log p(x) >= ELBO on average (Jensen), up to Monte Carlo error
    se = math.hypot(a["log_likelihood_se"], a["elbo_se"])
    assert a["gap"] > -4 * se


def test_samples_on_an_autoencoder_is_one_line(digits, tmp_path, capsys):
    np.save(tmp_path / "x.npy", digits.train[:100].numpy())
    run = tmp_path / "ae"
    train = ["train", "--model", "ae", "--data", str(tmp_path / "x.npy"), "--epochs", "1"]
    assert (
        main([*train, "--hidden", "16", "--latent-dim", "2", "--no-progress", "-o", str(run)]) == 0
    )
    capsys.readouterr()
    assert main(["evaluate", str(run), "--samples", "5"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "pyrovae: error: --samples estimates log p(x), which needs latent variables; "
        "this run is a ae\n"
    )
    assert not (run / "evaluation.json").exists()
