"""Workflows that use several verbs on one run: the autoencoder baselines, a run without
held-out data, and tabular data from a CSV file."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pyrovae.cli import main
from pyrovae.config import load_toml

TINY = ["--epochs", "2", "--hidden", "32", "--latent-dim", "2", "--no-progress"]


@pytest.mark.parametrize("model", ["ae", "dae"])
def test_autoencoder_baselines(tmp_path, capsys, model, run_cli, strict_json, read_metrics):
    run = tmp_path / "run"
    run_cli(capsys, ["train", *TINY, "--model", model, "-o", run])
    assert load_toml(run / "config.toml")["model"] == model
    assert torch.load(run / "checkpoint.pt", weights_only=True)["family"] == model
    header, rows = read_metrics(run)
    assert len(rows) == 2 and all(float(r["train_kl"]) == 0 for r in rows)
    result = strict_json(run_cli(capsys, ["evaluate", run]))
    assert result["model"] == model and result["elbo"] is None  # no ELBO without a latent
    assert math.isfinite(result["recon"]) and result["kl"] == 0
    run_cli(capsys, ["sample", run, "-n", "4"])
    assert np.load(run / "samples-4.npy").shape == (4, 1, 8, 8)


def test_run_without_held_out_data(
    tmp_path,
    capsys,
    run_cli,
    strict_json,
    read_metrics,
    assert_png,
):
    """--val-fraction 0 and --test-fraction 0: training monitors the training loss."""
    run = tmp_path / "run"
    argv = ["train", *TINY, "--val-fraction", "0", "--test-fraction", "0", "-o", run]
    summary = strict_json(run_cli(capsys, argv))
    assert summary["val_loss"] is None and summary["epochs"] == 2
    _, rows = read_metrics(run)
    assert [r["val_loss"] for r in rows] == ["nan", "nan"]
    assert_png(run / "reconstructions.png")
    run_cli(capsys, ["train", "--resume", run, "--epochs", "3"])
    assert len(read_metrics(run)[1]) == 3
    assert main(["evaluate", str(run)]) == 2
    err = capsys.readouterr().err
    assert err == "pyrovae: error: the test split of 'digits' is empty (its fraction is 0); " + (
        "choose another --split\n"
    )
    assert strict_json(run_cli(capsys, ["evaluate", run, "--split", "train"]))["n"] == 1797


def test_tabular_csv_with_standardize_end_to_end(
    tmp_path,
    capsys,
    monkeypatch,
    run_cli,
    strict_json,
    read_metrics,
    assert_png,
):
    rng = np.random.default_rng(0)
    x = rng.normal(loc=[100.0, -50.0, 3.0], scale=[5.0, 2.0, 0.5], size=(300, 3))
    np.savetxt(tmp_path / "table.csv", x, delimiter=",", header="a,b,c", comments="")
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    argv = ["train", *TINY, "--data", "table.csv", "--scale", "standardize", "-o", run]
    run_cli(capsys, argv)
    cfg = load_toml(run / "config.toml")
    assert cfg["likelihood"] == "gaussian" and cfg["scale"] == "standardize"
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ckpt["data_shape"] == [3] and ckpt["data"]["scaler"]["method"] == "standardize"
    shift = ckpt["data"]["scaler"]["shift"]
    assert shift.shape == (3,) and np.allclose(shift.numpy(), x.mean(0), atol=1.0)
    assert_png(run / "reconstructions.png")
    assert_png(run / "samples.png")

    # evaluate and sample work from another folder too (the data path is recorded absolute)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = strict_json(run_cli(capsys, ["evaluate", run]))
    assert result["n"] == 30 and math.isfinite(result["elbo"])
    assert result["elbo"] == pytest.approx(result["recon"] - result["kl"], rel=1e-5)
    run_cli(capsys, ["sample", run, "-n", "200"])
    samples = np.load(run / "samples-200.npy")
    assert samples.shape == (200, 3)
    # samples come back in the data's units, not standardized ones
    assert np.all(np.abs(samples.mean(0) - x.mean(0)) < 3 * x.std(0))
    assert_png(run / "samples-200.png")
    run_cli(capsys, ["train", "--resume", run, "--epochs", "3"])
    assert len(read_metrics(run)[1]) == 3

    # other data given to evaluate is scaled with the run's scaler, not refitted: data
    # moved far away from the training data must score far worse
    np.save(tmp_path / "moved.npy", x + 50 * x.std(0))
    moved = strict_json(run_cli(capsys, ["evaluate", run, "--data", tmp_path / "moved.npy"]))
    assert moved["elbo"] < 10 * result["elbo"]
    np.save(tmp_path / "wide.npy", rng.normal(size=(100, 4)))
    assert main(["evaluate", str(run), "--data", str(tmp_path / "wide.npy")]) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and "rows of shape (4,); the run was trained on rows of shape (3,)" in err
    )
