"""`pyrovae train` on a table: scikit-learn's breast-cancer data saved as a CSV (30
features and a 0/1 ``target`` column). The command line warns about unscaled features
and the label-like column, announces the likelihood it chose, carries the header's
names to the figures, the run's data info and the ArviZ export, and leaves columns out
with --drop-columns / --label-column."""

from __future__ import annotations

import json
import logging

import matplotlib.figure
import numpy as np
import pytest

from pyrovae import arviz_compat as ax
from pyrovae.api import load
from pyrovae.cli import main
from pyrovae.data import load_data
from pyrovae.report import build_report
from pyrovae.runs.data import load_run_data

TINY = ["--epochs", "1", "--hidden", "8", "--latent-dim", "2", "--no-progress"]
CLEAN = ["--scale", "standardize", "--likelihood", "gaussian-learned", "--drop-columns", "target"]


@pytest.fixture(scope="module")
def breast_cancer(tmp_path_factory):
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    path = tmp_path_factory.mktemp("tabular") / "breast_cancer.csv"
    frame.to_csv(path, index=False)
    return str(path), list(frame.columns)


@pytest.fixture
def saved_figures(monkeypatch):
    """The matplotlib figures saved during the test."""
    figs = []
    save = matplotlib.figure.Figure.savefig

    def record(self, *args, **kwargs):
        figs.append(self)
        return save(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", record)
    return figs


def _train(capsys, caplog, *argv) -> tuple[dict, list[str], list[str]]:
    """Run `pyrovae train`; its JSON summary, the warnings and the notices it logged."""
    capsys.readouterr()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="pyrovae"):
        status = main(["train", *TINY, *argv])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    records = [r for r in caplog.records if r.name.startswith("pyrovae")]
    warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    infos = [r.getMessage() for r in records if r.levelno == logging.INFO]
    return json.loads(captured.out), warnings, infos


def _fail(capsys, *argv) -> str:
    capsys.readouterr()
    assert main(["train", *TINY, *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pyrovae: error: ") and err.count("\n") == 1
    return err


def test_the_raw_table_gets_warnings_and_a_notice(breast_cancer, tmp_path, capsys, caplog):
    path, columns = breast_cancer
    _, warnings, infos = _train(capsys, caplog, "--data", path, "-o", str(tmp_path / "run"))
    train = load_data(path).train.double()
    sd = train.std(0, correction=0)[:-1]  # the features; the target is categorical
    wide, narrow = columns[int(sd.argmax())], columns[int(sd.argmin())]
    assert len(warnings) == 2, warnings
    assert (
        f"{float(sd.max()):.3g} of {wide!r}, {float(sd.min()):.3g} of {narrow!r}" in (warnings[0])
    )
    assert "--scale standardize" in warnings[0]
    assert "column 'target' looks like a label or target" in warnings[1]
    assert "--drop-columns target" in warnings[1]
    assert any("likelihood 'gaussian' chosen automatically" in m for m in infos)


def test_the_prepared_table_trains_without_a_word(
    breast_cancer, tmp_path, capsys, caplog, saved_figures
):
    path, columns = breast_cancer
    run = tmp_path / "run"
    _, warnings, infos = _train(capsys, caplog, "--data", path, *CLEAN, "-o", str(run))
    assert warnings == []
    assert not any("chosen automatically" in m for m in infos)
    assert 'drop_columns = ["target"]' in (run / "config.toml").read_text()
    features = columns[:-1]
    est = load(run)
    assert est.data_info_["feature_names"] == features
    assert load_run_data(est.data_info_).feature_names == features
    # the run's figures: scatter matrices labelled with the header's names
    assert len(saved_figures) == 2
    for fig in saved_figures:
        assert [a.get_xlabel() for a in fig.axes[-4:]] == features[:4]
    saved_figures.clear()
    assert main(["sample", str(run), "-n", "50"]) == 0
    (fig,) = saved_figures
    assert [a.get_ylabel() for a in fig.axes[::4]] == features[:4]
    # the ArviZ export's feature coordinates
    analyze = ["analyze", str(run), "--n", "4", "--draws", "3", "--samples", "3"]
    assert main([*analyze, "--mcmc-points", "0", "--sbc", "0"]) == 0
    posterior = ax.from_netcdf(run / "posterior.nc")
    assert list(ax.group(posterior, "observed_data")["x"]["feature"].values) == features


def test_an_explicit_scale_silences_the_scale_warning(breast_cancer, tmp_path, capsys, caplog):
    path, _ = breast_cancer
    argv = ["--data", path, "--scale", "none", "--likelihood", "gaussian"]
    _, warnings, infos = _train(capsys, caplog, *argv, "-o", str(tmp_path / "run"))
    assert len(warnings) == 1 and "column 'target' looks like a label" in warnings[0]
    assert not any("chosen automatically" in m for m in infos)


def test_a_label_column_is_kept_through_resume(breast_cancer, tmp_path, capsys, caplog):
    path, columns = breast_cancer
    run = tmp_path / "run"
    argv = ["--data", path, "--scale", "standardize", "--label-column", "target"]
    _, warnings, _ = _train(capsys, caplog, *argv, "--likelihood", "gaussian", "-o", str(run))
    assert warnings == []
    info = load(run).data_info_
    assert info["classes"] == [0, 1] and info["feature_names"] == columns[:-1]
    assert 'label_column = "target"' in (run / "config.toml").read_text()
    target = np.loadtxt(path, delimiter=",", skiprows=1, usecols=30)
    data = load_run_data(info)
    assert sorted(data.y_train.tolist() + data.y_val.tolist() + data.y_test.tolist()) == sorted(
        target.astype(int).tolist()
    )
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 0
    again = load(run)
    assert again.n_epochs_ == 2 and again.data_info_["classes"] == [0, 1]
    assert again.data_info_["label_column"] == "target"
    # the report reads the labels back as their classes (the latent view's legend)
    assert build_report(run, n=50, show=4, traverse=3, max_dims=2).is_file()


def test_one_row_trains_on_the_training_loss_with_a_warning(tmp_path, capsys, caplog):
    (tmp_path / "one.csv").write_text("a,b\n1.5,2.25\n")
    argv = ["--data", str(tmp_path / "one.csv"), "--scale", "none", "-o", str(tmp_path / "run")]
    summary, warnings, _ = _train(capsys, caplog, *argv)
    assert warnings == [
        f"the validation split of {str(tmp_path / 'one.csv')!r} is empty (0.1 of 1 rows "
        "rounds to 0): early stopping (--patience) and the best checkpoint follow the "
        "training loss"
    ]
    assert summary["epochs"] == 1


def test_no_training_rows_is_one_line(tmp_path, capsys):
    path = tmp_path / "two.csv"
    path.write_text("a,b\n1.5,2\n2.5,3\n")
    argv = ["--data", str(path), "--test-fraction", "0.5", "--val-fraction", "0.9"]
    err = _fail(capsys, *argv, "-o", str(tmp_path / "run"))
    assert err == (
        f"pyrovae: error: data {str(path)!r} has no rows left for training: 1 test and 1 "
        "validation rows take all 2 (lower --test-fraction / --val-fraction, or give more "
        "rows)\n"
    )
    assert not (tmp_path / "run").exists()


def test_drop_columns_errors_are_one_line(breast_cancer, tmp_path, capsys):
    path, _ = breast_cancer
    err = _fail(capsys, "--data", path, "--drop-columns", "targte", "-o", str(tmp_path / "r"))
    assert err.startswith(f"pyrovae: error: --drop-columns: column 'targte' is not in {path!r}")
