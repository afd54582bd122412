"""The experiment trackers (``--log``): what TensorBoard and MLflow receive, read back with
their own readers (TensorBoard's event accumulator, MLflow's client on a file store in a
temporary folder); a resumed run continuing its MLflow run; logging that leaves training
unchanged; the libraries imported only when asked for."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pyrovae.api import VAE, resume
from pyrovae.cli import main
from pyrovae.errors import ConfigError, RegistryError
from pyrovae.estimators import ESTIMATORS
from pyrovae.runs import read_metrics
from pyrovae.runs.names import MLFLOW_RUN, TENSORBOARD
from pyrovae.training import TrainingOptions, standard_callbacks
from pyrovae.training import loggers as L

pytest.importorskip("tensorboard")
pytest.importorskip("mlflow")

from mlflow.tracking import MlflowClient  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)

SMALL = dict(hidden=(32,), latent_dim=2, batch_size=100, patience=0, epochs=3)
ROWS = 200
#: metrics.csv's numeric columns as both trackers log them (the timings vary by run)
LOGGED = ("beta", "lr", *(f"{s}_{k}" for s in ("train", "val") for k in ("loss", "elbo")))


@pytest.fixture
def data(small_digits):
    train, val = small_digits
    return train[:ROWS], val[:50]


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh MLflow file store as the tracking URI."""
    uri = (tmp_path / "store").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    return uri


def events(run: Path) -> EventAccumulator:
    acc = EventAccumulator(str(run / TENSORBOARD), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def mlflow_run(run: Path):
    record = json.loads((run / MLFLOW_RUN).read_text())
    client = MlflowClient(record["tracking_uri"])
    return client, client.get_run(record["run_id"])


# -- the registry ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", L.LOGGERS.names())
def test_every_tracker_is_a_callback_built_by_name(name):
    options = TrainingOptions(log=f"{name},{name}", log_images_every=3)
    trackers = [cb for cb in standard_callbacks(options) if isinstance(cb, L.Tracker)]
    assert [type(t) for t in trackers] == [L.LOGGERS.get(name)]  # once, last
    assert trackers[0].images_every == 3
    assert not any(isinstance(cb, L.Tracker) for cb in standard_callbacks(TrainingOptions()))


@pytest.mark.parametrize("name", L.LOGGERS.names())
def test_a_missing_library_is_one_line_naming_the_extra(name, monkeypatch):
    cls = L.LOGGERS.get(name)
    real = L.importlib.util.find_spec
    monkeypatch.setattr(
        L.importlib.util, "find_spec", lambda m, *a: None if m == cls.requires else real(m, *a)
    )
    with pytest.raises(ConfigError) as info:
        VAE(log=[name]).check_params()
    message = str(info.value)
    assert "\n" not in message and f"pip install 'pyrovae[{cls.extra}]'" in message
    assert message.startswith(f"--log {name} needs the {cls.requires} package")


def test_an_unknown_tracker_names_the_known_ones():
    with pytest.raises(RegistryError, match="tensorboard"):
        VAE(log="tensorbord").check_params()


def test_the_names_parse_as_the_cli_and_toml_give_them():
    assert L.tracker_names("tensorboard, mlflow,tensorboard") == ["tensorboard", "mlflow"]
    assert L.tracker_names(("mlflow",)) == ["mlflow"] and L.tracker_names(None) == []
    with pytest.raises(ConfigError, match="expected a list of names"):
        L.tracker_names([1])


def test_epoch_metrics_keep_the_finite_numbers():
    row = {"epoch": 3, "beta": 1, "train_elbo": math.nan, "val_loss": 2.5, "note": "x"}
    assert L.epoch_metrics(row) == {"beta": 1.0, "val_loss": 2.5}


# -- TensorBoard ----------------------------------------------------------------------------


def test_tensorboard_logs_the_metrics_kl_images_and_options(data, tmp_path):
    run = tmp_path / "run"
    est = VAE(**SMALL, log=["tensorboard"], log_images_every=2)
    est.fit(data[0], X_val=data[1], run_dir=run)
    acc = events(run)
    tags = acc.Tags()
    assert [int(r["epoch"]) for r in read_metrics(run)] == [1, 2, 3]
    for key in LOGGED:  # TensorBoard keeps float32
        got = [(e.step, e.value) for e in acc.Scalars(key)]
        assert got == [(r["epoch"], float(np.float32(r[key]))) for r in est.history_], key
    # the KL per dimension at the last epoch is the closed form of the weights trained
    # until then (the last epoch's, restored here from the last checkpoint)
    last = VAE.load(run / "checkpoint.pt")  # best = last: patience 0, improving
    assert est.best_epoch_ == 3
    q = last.encode(data[1])
    mu, sd = q.mean, q.stddev
    closed = (0.5 * (mu**2 + sd**2 - 1) - sd.log()).mean(0)
    kl_tags = sorted(t for t in tags["scalars"] if t.startswith("kl_per_dim/"))
    assert kl_tags == ["kl_per_dim/0", "kl_per_dim/1"]
    logged = torch.tensor([acc.Scalars(t)[-1].value for t in kl_tags])
    torch.testing.assert_close(logged, closed.float(), rtol=1e-5, atol=1e-6)
    # images every 2nd epoch: 2 rows of 8 data images above their reconstructions, and
    # 64 samples from the prior (8x8 images, one pixel between them)
    assert [e.step for e in acc.Images("reconstructions")] == [2]
    assert [e.step for e in acc.Images("samples")] == [2]
    recon, samples = acc.Images("reconstructions")[0], acc.Images("samples")[0]
    assert (recon.width, recon.height) == (8 * 9 + 1, 4 * 9 + 1)
    assert (samples.width, samples.height) == (8 * 9 + 1, 8 * 9 + 1)
    # the options, as hyperparameters and as a table
    assert "_hparams_/experiment" in acc.PluginTagToContent("hparams")
    table = acc.Tensors("options/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "| latent_dim | 2 |" in table and "| log | ['tensorboard'] |" in table


def test_logging_leaves_training_unchanged(data, tmp_path, store):
    plain = VAE(**SMALL).fit(data[0], X_val=data[1], run_dir=tmp_path / "plain")
    logged = VAE(**SMALL, log=["tensorboard", "mlflow"], log_images_every=1)
    logged.fit(data[0], X_val=data[1], run_dir=tmp_path / "logged")
    for a, b in zip(plain.history_, logged.history_, strict=True):
        assert {k: a[k] for k in LOGGED} == {k: b[k] for k in LOGGED}


@pytest.mark.parametrize("family", ESTIMATORS.names())
def test_tensorboard_for_every_family(family, data, digits, tmp_path):
    run = tmp_path / family
    est = ESTIMATORS.get(family)(**{**SMALL, "epochs": 1}, log="tensorboard", log_images_every=1)
    labels = digits.y_train[:ROWS], digits.y_val[: len(data[1])]  # the rows of ``data``
    est.fit(data[0], labels[0], X_val=data[1], y_val=labels[1], run_dir=run)
    tags = events(run).Tags()
    assert {"train_loss", "val_loss", "beta", "lr"} <= set(tags["scalars"])
    latent = est.module_.has_latent_sites
    assert set(tags["images"]) == (
        {"reconstructions", "samples"} if latent else {"reconstructions"}
    )
    if family == "vae":
        assert {t for t in tags["scalars"] if t.startswith("kl_per_dim/")} == {
            "kl_per_dim/0",
            "kl_per_dim/1",
        }
    if not latent:  # no KL, no prior to sample from while training
        assert not any(t.startswith("kl_per_dim/") for t in tags["scalars"])
        assert "train_kl" not in tags["scalars"] or events(run).Scalars("train_kl")[0].value == 0


def test_tables_get_no_images(tabular, tmp_path):
    run = tmp_path / "run"
    VAE(**{**SMALL, "epochs": 2}, log="tensorboard", log_images_every=1).fit(
        tabular[:150], X_val=tabular[150:], run_dir=run
    )
    tags = events(run).Tags()
    assert tags["images"] == [] and "val_elbo" in tags["scalars"]


def test_tensorboard_needs_a_run_folder(data):
    with pytest.raises(ConfigError, match="--log tensorboard writes into the run folder"):
        VAE(**SMALL, log="tensorboard").fit(data[0])


# -- MLflow ---------------------------------------------------------------------------------


def test_mlflow_params_metrics_and_artifacts(data, tmp_path, store):
    run = tmp_path / "run"
    est = VAE(**SMALL, log=["mlflow"]).fit(data[0], X_val=data[1], run_dir=run)
    client, info = mlflow_run(run)
    assert client.tracking_uri == store
    assert info.info.status == "FINISHED" and info.info.run_name == "run"
    assert info.data.params["latent_dim"] == "2" and info.data.params["epochs"] == "3"
    for key in LOGGED:
        history = client.get_metric_history(info.info.run_id, key)
        assert [(m.step, m.value) for m in history] == [
            (r["epoch"], float(r[key])) for r in est.history_
        ]
    artifacts = {a.path for a in client.list_artifacts(info.info.run_id)}
    assert {"metrics.csv", "checkpoint.pt", "run.json", MLFLOW_RUN} <= artifacts
    experiment = client.get_experiment(info.info.experiment_id)
    assert experiment.name == L.DEFAULT_EXPERIMENT


def test_a_resumed_run_continues_its_mlflow_run(data, tmp_path, store, monkeypatch):
    run = tmp_path / "run"
    VAE(**{**SMALL, "epochs": 2}, log="mlflow").fit(data[0], X_val=data[1], run_dir=run)
    client, first = mlflow_run(run)
    # resumed from another folder with another tracking URI set: the run's own store
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "elsewhere").as_uri())
    est = resume(run, data[0], data[1], epochs=4)
    client, again = mlflow_run(run)
    assert again.info.run_id == first.info.run_id and again.info.status == "FINISHED"
    history = client.get_metric_history(first.info.run_id, "val_loss")
    assert [(m.step, m.value) for m in history] == [
        (r["epoch"], r["val_loss"]) for r in est.history_
    ]
    assert len(client.search_runs([first.info.experiment_id])) == 1
    assert not (tmp_path / "elsewhere").exists()


def test_the_default_store_is_mlruns_in_the_current_folder(data, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "mine")
    monkeypatch.chdir(tmp_path)
    VAE(**{**SMALL, "epochs": 1}, log="mlflow").fit(data[0], run_dir=tmp_path / "run")
    client, info = mlflow_run(tmp_path / "run")
    assert client.tracking_uri == (tmp_path / "mlruns").as_uri()
    assert client.get_experiment(info.info.experiment_id).name == "mine"


def test_mlflow_without_a_run_folder_logs_metrics(data, store):
    est = VAE(**{**SMALL, "epochs": 2}, log="mlflow").fit(data[0])
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name(L.DEFAULT_EXPERIMENT)
    (found,) = client.search_runs([experiment.experiment_id])
    history = client.get_metric_history(found.info.run_id, "train_loss")
    assert [m.value for m in history] == [r["train_loss"] for r in est.history_]


# -- the command line -----------------------------------------------------------------------


def cli(capsys, argv: list) -> None:
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err


def test_cli_log_both_and_resume(capsys, tmp_path, store):
    run = tmp_path / "run"
    base = ["train", "--data", "digits", "--hidden", "16", "--latent-dim", "2"]
    cli(capsys, [*base, "--epochs", "1", "-o", run, "--log", "tensorboard,mlflow", "--no-progress"])
    cli(capsys, ["train", "--resume", run, "--epochs", "2", "--log-images-every", "1"])
    client, info = mlflow_run(run)
    assert [m.step for m in client.get_metric_history(info.info.run_id, "val_elbo")] == [1, 2]
    artifacts = {a.path for a in client.list_artifacts(info.info.run_id)}
    assert {"reconstructions.png", "samples.png", "config.toml", TENSORBOARD} <= artifacts
    acc = events(run)
    # one event file per session, read in name order: torch names them by the second
    # and a per-process counter, so two sessions in one second may come in either order
    assert sorted(e.step for e in acc.Scalars("val_elbo")) == [1, 2]
    assert [e.step for e in acc.Images("samples")] == [2]  # --log-images-every 1 on resume


def test_toml_log_key(capsys, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('log = ["tensorboard"]\nlog_images_every = 1\nepochs = 1\nhidden = [16]\n')
    cli(capsys, ["train", "--data", "digits", "--config", config, "-o", tmp_path / "r"])
    assert events(tmp_path / "r").Tags()["images"] == ["reconstructions", "samples"]


def test_the_trackers_libraries_are_imported_only_when_asked_for(tmp_path):
    code = (
        "import sys, pyrovae\n"
        "from pyrovae.cli import main\n"
        f"main(['train', '--data', 'digits', '--epochs', '1', '--hidden', '8', "
        f"'--no-progress', '-o', {str(tmp_path / 'r')!r}])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorboard', 'mlflow')"
        " or m.startswith('torch.utils.tensorboard')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "r" / "metrics.csv").exists()


def test_fit_takes_loggers_for_one_fit(data, tmp_path):
    """``fit(..., loggers=[...])`` logs that fit without changing the estimator's ``log``;
    a bad name fails before anything is trained."""
    est = VAE(**{**SMALL, "epochs": 1})
    with pytest.raises(RegistryError):
        est.fit(data[0], run_dir=tmp_path / "bad", loggers=["no-such-tracker"])
    assert not (tmp_path / "bad").exists()
    est.fit(data[0], X_val=data[1], run_dir=tmp_path / "run", loggers=["tensorboard"])
    assert est.log == () and "train_loss" in events(tmp_path / "run").Tags()["scalars"]
    est.fit(data[0], X_val=data[1], run_dir=tmp_path / "plain")
    assert not (tmp_path / "plain" / TENSORBOARD).exists()
