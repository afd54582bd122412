"""`pyrovae train`: the run folder it writes, --config, --force and --resume, and
--time-budget, --budget-clock and --binarize.

Budgets run on fake clocks that advance one second each time they are read, so the
point where a budget stops a run depends on the number of clock reads (steps), never
on the machine's speed. Each run is compared with the same training through the API,
which tests/training/test_time_budget.py and tests/data/test_binarize.py check.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from pyrovae.api import VAE, load
from pyrovae.cli import main
from pyrovae.config import OPTIONS, load_toml
from pyrovae.data import load_data
from pyrovae.training import METRIC_COLUMNS, load_checkpoint
from pyrovae.training.trainer import CLOCKS

BASE = ["--epochs", "20", "--hidden", "16", "--latent-dim", "2", "--batch-size", "64"]
BASE += ["--patience", "0", "--no-progress"]
TINY = ["--epochs", "2", "--hidden", "32", "--latent-dim", "2", "--no-progress"]


@pytest.fixture
def data_file(tmp_path, digits):
    """200 digit images: 162 training rows, 3 minibatches of 64 per epoch."""
    np.save(tmp_path / "x.npy", digits.train[:200].numpy())
    return str(tmp_path / "x.npy")


def _ticking(monkeypatch, name):
    ticks = {"t": 0.0}

    def clock() -> float:
        ticks["t"] += 1.0
        return ticks["t"]

    monkeypatch.setitem(CLOCKS, name, clock)
    return ticks


def _train(capsys, *args) -> dict:
    capsys.readouterr()
    status = main(["train", *args])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return json.loads(captured.out)


def _fail(capsys, *args) -> str:
    capsys.readouterr()
    assert main(["train", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pyrovae: error: ") and err.count("\n") == 1
    return err


def _same_weights(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.values(), b.values(), strict=True))


@pytest.mark.parametrize("clock, frozen", [("wall", "cpu"), ("cpu", "wall")])
def test_time_budget_on_the_chosen_clock(data_file, tmp_path, capsys, monkeypatch, clock, frozen):
    """Only the chosen clock ticks (the other is frozen): the budget stops the run where
    the same budget stops an API fit, and the run records the clock."""
    _ticking(monkeypatch, clock)
    monkeypatch.setitem(CLOCKS, frozen, lambda: 0.0)
    run = tmp_path / "run"
    args = [*BASE, "--data", data_file, "--time-budget", "10", "--budget-clock", clock]
    summary = _train(capsys, *args, "-o", str(run))
    assert summary["time_budget_spent"] is True and summary["epochs"] < 20
    ckpt = load_checkpoint(run / "checkpoint.pt")
    assert ckpt["params"]["time_budget"] == 10.0 and ckpt["params"]["budget_clock"] == clock
    assert ckpt["trainer"]["budget_clock"] == clock and ckpt["trainer"]["time_used"] >= 10
    est = load(run)
    d = load_data(data_file)
    _ticking(monkeypatch, clock)
    api = VAE(**est.get_params()).fit(d.train, X_val=d.val, run_dir=tmp_path / "api")
    assert api.budget_spent_ and api.n_epochs_ == summary["epochs"]
    assert api.time_used_ == ckpt["trainer"]["time_used"]
    assert _same_weights(api.module_.state_dict(), est.module_.state_dict())


def test_budget_on_the_other_clock_does_not_stop(data_file, tmp_path, capsys, monkeypatch):
    _ticking(monkeypatch, "cpu")
    monkeypatch.setitem(CLOCKS, "wall", lambda: 0.0)
    args = [*BASE, "--data", data_file, "--time-budget", "10", "--budget-clock", "wall"]
    summary = _train(capsys, *args, "--epochs", "3", "-o", str(tmp_path / "run"))
    assert summary["time_budget_spent"] is False and summary["epochs"] == 3


def test_resume_of_a_spent_budget(data_file, tmp_path, capsys, monkeypatch):
    _ticking(monkeypatch, "wall")
    run = str(tmp_path / "run")
    first = _train(capsys, *BASE, "--data", data_file, "--time-budget", "10", "-o", run)
    used = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["trainer"]["time_used"]
    before = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    err = _fail(capsys, "--resume", run)
    assert f"the run has spent its time budget ({used:.0f} of 10 s)" in err
    err = _fail(capsys, "--resume", run, "--time-budget", "5")
    assert f"the run has already used {used:.0f} s; pass a larger total --time-budget" in err
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == before
    more = _train(capsys, "--resume", run, "--time-budget", "30")
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert more["time_budget_spent"] is True and more["epochs"] > first["epochs"]
    assert 30 <= ckpt["trainer"]["time_used"] and ckpt["params"]["time_budget"] == 30.0


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--budget-clock", "sundial", "budget_clock"),
        ("--time-budget", "soon", "time_budget"),
        ("--binarize", "sometimes", "sometimes"),
    ],
)
def test_bad_budget_and_binarize_options(data_file, tmp_path, capsys, flag, value, message):
    err = _fail(capsys, *BASE, "--data", data_file, flag, value, "-o", str(tmp_path / "r"))
    assert message in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("how", ["static", "dynamic"])
def test_binarize_trains_on_binarized_data(data_file, tmp_path, capsys, how):
    """The run equals an API fit on the binarized splits (with the dynamic draw as the
    training transform), and differs from a run on the grey levels."""
    run = tmp_path / "run"
    _train(capsys, *BASE, "--epochs", "2", "--data", data_file, "--binarize", how, "-o", str(run))
    est = load(run)
    assert est.data_info_["binarize"] == how and est.likelihood_ == "bernoulli"
    d = load_data(data_file, binarize=how)
    api = VAE(**est.get_params()).fit(d.train, X_val=d.val, train_transform=d.train_transform)
    assert _same_weights(api.module_.state_dict(), est.module_.state_dict())
    grey = load_data(data_file)
    plain = VAE(**est.get_params()).fit(grey.train, X_val=grey.val)
    assert not _same_weights(plain.module_.state_dict(), est.module_.state_dict())


def test_resume_refusals(data_file, tmp_path, capsys):
    """A finished run, a total that leaves nothing to train, an option that may not
    change, and a checkpoint without training state: one line each, the run untouched."""
    run = tmp_path / "run"
    _train(capsys, *BASE, "--epochs", "1", "--data", data_file, "-o", str(run))
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    err = _fail(capsys, "--resume", str(run))
    assert "the run is finished (1 of 1 epochs); pass a larger total --epochs" in err
    err = _fail(capsys, "--resume", str(run), "--epochs", "1")
    assert "the run has already trained 1 epochs; pass a larger total --epochs" in err
    err = _fail(capsys, "--resume", str(run), "--epochs", "3", "--seed", "4")
    assert "--resume continues a run as configured" in err and "(got --seed)" in err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    # the model alone, as save() writes it after load(): weights but no trainer state
    load(run).save(run / "checkpoint.pt")
    err = _fail(capsys, "--resume", str(run), "--epochs", "3")
    assert "holds no training state to resume" in err


# -- the run folder of a plain run, a config file, --force and --resume ----------------


def test_train_writes_the_run_folder(digits_run, assert_png):
    run = digits_run
    for name in ("config.toml", "checkpoint.pt", "metrics.csv"):
        assert (run / name).is_file()
    assert_png(run / "reconstructions.png")
    assert_png(run / "samples.png")


def test_written_config(digits_run):
    cfg = load_toml(digits_run / "config.toml")
    assert cfg["epochs"] == 2 and cfg["hidden"] == [32] and cfg["latent_dim"] == 2
    assert cfg["data"] == "digits" and cfg["model"] == "vae"
    assert cfg["likelihood"] == "bernoulli"  # chosen from the data and recorded
    assert set(cfg) == {o.name for o in OPTIONS if o.default not in (None, {})} | {"likelihood"}


def test_checkpoint_is_plain_data(digits_run):
    ckpt = torch.load(digits_run / "checkpoint.pt", weights_only=True)
    assert ckpt["format"] == "pyrovae-checkpoint" and ckpt["family"] == "vae"
    assert ckpt["trainer"]["epoch"] == 2 and ckpt["data_shape"] == [1, 8, 8]
    assert ckpt["data"]["data"] == "digits" and ckpt["data"]["scaler"]["method"] == "none"


def test_metrics_file(digits_run, read_metrics):
    header, rows = read_metrics(digits_run)
    assert tuple(header) == METRIC_COLUMNS
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for row in rows:
        values = {k: float(v) for k, v in row.items()}
        assert all(math.isfinite(v) for v in values.values())
        for split in ("train", "val"):
            elbo, recon, kl = (values[f"{split}_{t}"] for t in ("elbo", "recon", "kl"))
            assert elbo == pytest.approx(recon - kl, abs=1e-3)
            assert values[f"{split}_loss"] == pytest.approx(-elbo, abs=1e-3)  # beta = 1


def test_train_prints_a_json_summary(digits_run, strict_json):
    summary = strict_json((digits_run.parent / "stdout.json").read_text())
    assert summary["run"] == str(digits_run)
    assert summary["epochs"] == 2 and summary["best_epoch"] == 2
    assert summary["val_elbo"] == pytest.approx(-summary["val_loss"], rel=1e-5)
    assert [Path(f).name for f in summary["figures"]] == ["reconstructions.png", "samples.png"]


def test_config_file_options_take_effect_and_flags_override_them(
    tmp_path,
    capsys,
    monkeypatch,
    run_cli,
    read_metrics,
):
    (tmp_path / "c.toml").write_text(
        "latent_dim = 5\nhidden = [16, 8]\nepochs = 1\nbeta = 0.5\nseed = 7\n"
        'activation = "tanh"\nval_fraction = 0.2\n'
    )
    monkeypatch.chdir(tmp_path)
    # no --output: the run goes to runs/MODEL-DATA-TIMESTAMP under the working folder
    run_cli(
        capsys,
        ["train", "--config", "c.toml", "--latent-dim", "3", "--seed", "8", "--no-progress"],
    )
    (run,) = (tmp_path / "runs").glob("vae-digits-*")
    cfg = load_toml(run / "config.toml")
    assert cfg["latent_dim"] == 3 and cfg["seed"] == 8  # flags win
    assert cfg["hidden"] == [16, 8] and cfg["epochs"] == 1 and cfg["beta"] == 0.5
    assert cfg["activation"] == "tanh" and cfg["val_fraction"] == 0.2
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ckpt["params"]["latent_dim"] == 3 and ckpt["params"]["hidden"] == [16, 8]
    assert ckpt["params"]["beta"] == 0.5 and ckpt["params"]["activation"] == "tanh"
    assert len(read_metrics(run)[1]) == 1
    # the written config.toml is itself a valid --config file
    again = tmp_path / "again"
    run_cli(capsys, ["train", "--config", run / "config.toml", "-o", again, "--no-progress"])
    assert load_toml(again / "config.toml") == cfg


def test_force_writes_into_an_existing_run(run_copy, capsys, run_cli, read_metrics):
    run_cli(capsys, ["train", *TINY, "--epochs", "1", "-o", run_copy, "--force"])
    assert len(read_metrics(run_copy)[1]) == 1
    assert torch.load(run_copy / "checkpoint.pt", weights_only=True)["trainer"]["epoch"] == 1


def test_resume_continues_a_run(run_copy, tmp_path, capsys, run_cli, read_metrics):
    _, before = read_metrics(run_copy)
    run_cli(capsys, ["train", "--resume", run_copy, "--epochs", "3"])
    _, rows = read_metrics(run_copy)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert rows[:2] == before
    assert torch.load(run_copy / "checkpoint.pt", weights_only=True)["trainer"]["epoch"] == 3
    # ... exactly as a run trained for 3 epochs in one go
    fresh = tmp_path / "fresh"
    run_cli(capsys, ["train", *TINY, "--epochs", "3", "-o", fresh])
    _, straight = read_metrics(fresh)
    for a, b in zip(rows, straight, strict=True):
        assert {k: v for k, v in a.items() if k not in ("seconds", "cpu_seconds")} == {
            k: v for k, v in b.items() if k not in ("seconds", "cpu_seconds")
        }
