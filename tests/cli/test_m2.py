"""``pyrovae train --model m2 --n-labels N`` and ``evaluate`` on the digits: the label
choice recorded in config.toml and kept through --resume; accuracy next to the ELBO;
one-line errors, nothing written, for runs that cannot work."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from pyrovae.api import load
from pyrovae.cli import main
from pyrovae.runs.data import load_run_data

TINY = ["--epochs", "2", "--hidden", "16", "--latent-dim", "2", "--no-progress"]


def test_m2_trains_evaluates_and_resumes(tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--model", "m2", "--n-labels", "30", "--binarize", "static", *TINY]
    assert main([*argv, "-o", str(run)]) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert "n_labels = 30" in (run / "config.toml").read_text()
    est = load(run)
    data = load_run_data(est.data_info_)
    labelled = data.y_train >= 0
    assert int(labelled.sum()) == 30 and (data.y_val == -1).all()
    assert est.n_classes == 10
    assert main(["evaluate", str(run), "--particles", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["labelled"] == 180 and 0 <= out["accuracy"] <= 1
    assert out["accuracy"] == pytest.approx(est.score(data.test, data.y_test))
    assert out["accuracy_se"] == pytest.approx(
        math.sqrt(out["accuracy"] * (1 - out["accuracy"]) / 180)
    )
    assert math.isfinite(out["elbo"])
    assert main(["train", "--resume", str(run), "--epochs", "3"]) == 0, capsys.readouterr().err
    again = load(run)
    assert again.n_epochs_ == 3
    again_data = load_run_data(again.data_info_)
    assert torch.equal(again_data.y_train, data.y_train)  # the same labelled rows


def test_analyze_sample_and_report_run_on_m2(tmp_path, capsys):
    """The posterior analyses (y treated marginally), prior samples and the HTML report
    work on an m2 run, with a finite importance-sampled log p(x) (y summed exactly)."""
    run = tmp_path / "run"
    argv = ["train", "--model", "m2", "--n-labels", "20", "--binarize", "static", *TINY]
    assert main([*argv, "-o", str(run)]) == 0, capsys.readouterr().err
    fast = ["--draws", "5", "--samples", "5", "--mcmc-points", "0", "--sbc", "0"]
    assert main(["analyze", str(run), "--output", str(tmp_path / "a"), *fast]) == 0
    capsys.readouterr()
    diagnostics = json.loads((tmp_path / "a" / "diagnostics.json").read_text())
    assert math.isfinite(diagnostics["decomposition"]["log_likelihood"])
    assert (tmp_path / "a" / "posterior.nc").exists()
    assert main(["sample", str(run), "--n", "4", "--output", str(tmp_path / "s.png")]) == 0
    assert main(["report", str(run), "--output", str(tmp_path / "r.html"), "--n", "30"]) == 0
    assert (tmp_path / "r.html").stat().st_size > 10_000


def _fails(argv, capsys, needle: str, run) -> None:
    assert main([str(a) for a in argv]) != 0
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1, err
    assert not run.exists()


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--n-labels", "5"], "--n-labels 5 is fewer than the 10 classes"),
        (["--n-labels", "5000"], "--n-labels 5000 is more than the 1455 labelled training rows"),
    ],
)
def test_impossible_label_counts_write_nothing(extra, needle, tmp_path, capsys):
    run = tmp_path / "run"
    _fails(["train", "--model", "m2", *extra, *TINY, "-o", run], capsys, needle, run)


def test_m2_without_labels_writes_nothing(tabular, tmp_path, capsys):
    np.save(tmp_path / "x.npy", tabular.numpy())
    run = tmp_path / "run"
    argv = ["train", "--model", "m2", "--data", tmp_path / "x.npy", *TINY, "-o", run]
    _fails(argv, capsys, "the m2 model needs labels", run)


def test_a_single_class_writes_nothing(tabular, tmp_path, capsys):
    table = np.column_stack([tabular.numpy(), np.full(len(tabular), 7)])
    np.savetxt(tmp_path / "t.csv", table, delimiter=",", header="a,b,c,d,e,label", comments="")
    run = tmp_path / "run"
    argv = ["train", "--model", "m2", "--data", tmp_path / "t.csv", "--label-column", "label"]
    _fails([*argv, *TINY, "-o", run], capsys, "has a single class (7)", run)


def test_string_labels_of_a_csv_round_trip(tabular, tmp_path, capsys):
    """A CSV's string label column, --n-labels drawn stratified over its classes, the
    classes stored with the run; evaluate and --resume use the same labelled rows."""
    labels = np.array(["cat", "dog", "emu"])[np.arange(len(tabular)) % 3]
    path = tmp_path / "t.csv"
    with open(path, "w") as fh:
        fh.write("a,b,c,d,e,kind\n")
        for row, label in zip(tabular.numpy(), labels, strict=True):
            fh.write(",".join(f"{v:.5f}" for v in row) + f",{label}\n")
    run = tmp_path / "run"
    argv = ["train", "--model", "m2", "--data", path, "--label-column", "kind"]
    argv += ["--n-labels", "6", "--scale", "standardize", *TINY, "-o", run]
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    capsys.readouterr()
    est = load(run)
    assert est.data_info_["classes"] == ["cat", "dog", "emu"] and est.n_classes == 3
    data = load_run_data(est.data_info_)
    kept = data.y_train[data.y_train >= 0]
    assert torch.equal(torch.bincount(kept), torch.tensor([2, 2, 2]))
    assert main(["evaluate", str(run), "--particles", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["labelled"] == len(data.test) and 0 <= out["accuracy"] <= 1
    assert main(["train", "--resume", str(run), "--epochs", "3"]) == 0, capsys.readouterr().err
    again = load_run_data(load(run).data_info_)
    assert torch.equal(again.y_train, data.y_train)
