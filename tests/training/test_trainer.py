"""Trainer: metrics, checkpoints, resume, early stopping, reproducibility."""

from __future__ import annotations

import csv
import math

import pytest
import torch

from pyrovae.api import VAE, resume
from pyrovae.training import METRIC_COLUMNS, EarlyStopping, load_checkpoint
from pyrovae.training.checkpoint import save_checkpoint

SMALL = dict(hidden=(32,), latent_dim=2, batch_size=64)


def _losses(history):
    return [
        {k: v for k, v in row.items() if k not in ("seconds", "cpu_seconds")} for row in history
    ]


def test_metrics_file_and_checkpoint_each_epoch(small_digits, tmp_path):
    x, xv = small_digits
    vae = VAE(epochs=3, **SMALL).fit(x, X_val=xv, run_dir=tmp_path)
    with open(tmp_path / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == METRIC_COLUMNS
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    for r in rows:
        assert float(r["train_elbo"]) == pytest.approx(
            float(r["train_recon"]) - float(r["train_kl"]), abs=1e-3
        )
        assert float(r["val_kl"]) >= 0 and float(r["seconds"]) > 0
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ckpt["format"] == "pyrovae-checkpoint"
    assert ckpt["trainer"]["epoch"] == 3 and ckpt["family"] == "vae"
    assert set(ckpt["module"]) == set(vae.module_.state_dict())
    assert "state" in ckpt["trainer"]["optimizer"]
    assert ckpt["params"]["latent_dim"] == 2


def test_same_seed_same_losses_other_seed_differs(small_digits):
    x, xv = small_digits
    a = VAE(epochs=2, seed=3, **SMALL).fit(x, X_val=xv).history_
    b = VAE(epochs=2, seed=3, **SMALL).fit(x, X_val=xv).history_
    c = VAE(epochs=2, seed=4, **SMALL).fit(x, X_val=xv).history_
    assert _losses(a) == _losses(b)
    assert _losses(a) != _losses(c)


def test_resume_continues_exactly(small_digits, tmp_path):
    """Training 2 epochs, then resuming to 4, equals training 4 epochs straight."""
    x, xv = small_digits
    straight = VAE(epochs=4, **SMALL).fit(x, X_val=xv, run_dir=tmp_path / "a")
    VAE(epochs=2, **SMALL).fit(x, X_val=xv, run_dir=tmp_path / "b")
    torch.manual_seed(999)  # resuming must restore the RNG streams itself
    resumed = resume(tmp_path / "b", x, xv, epochs=4)
    assert resumed.n_epochs_ == 4
    assert _losses(resumed.history_) == _losses(straight.history_)
    for p, q in zip(straight.module_.parameters(), resumed.module_.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_early_stopping_unit():
    es = EarlyStopping(patience=2)
    assert es.update(3.0) and es.update(2.0)
    assert not es.update(2.5) and not es.should_stop
    assert not es.update(2.1) and es.should_stop
    es2 = EarlyStopping(patience=0)
    for v in [1, 2, 3, 4]:
        es2.update(v)
    assert not es2.should_stop
    # while the schedule is still moving, values are not compared
    es3 = EarlyStopping(patience=1)
    es3.update(1.0)
    assert es3.update(5.0, comparable=False) and es3.bad_epochs == 0


def test_training_stops_early_and_restores_best(small_digits):
    x, xv = small_digits
    vae = VAE(epochs=50, patience=1, learning_rate=1e-7, **SMALL).fit(x, X_val=xv)
    assert vae.stopped_early_ and vae.n_epochs_ < 50
    best = min(vae.history_, key=lambda r: r["val_loss"])
    assert vae.best_epoch_ == best["epoch"]


def test_warmup_sets_beta_per_epoch(small_digits):
    x, xv = small_digits
    vae = VAE(epochs=4, beta=2.0, beta_schedule="linear", beta_warmup=2, **SMALL)
    vae.fit(x, X_val=xv)
    betas = [r["beta"] for r in vae.history_]
    assert betas == pytest.approx([1.0, 2.0, 2.0, 2.0])
    for r in vae.history_:  # the objective carries beta, the ELBO does not
        assert r["val_loss"] == pytest.approx(-(r["val_recon"] - r["beta"] * r["val_kl"]), 1e-4)


def test_checkpoint_is_plain_data(tmp_path):
    save_checkpoint(tmp_path / "c.pt", {"a": torch.ones(2), "b": [1, 2.5, "x", None], "c": {}})
    ck = load_checkpoint(tmp_path / "c.pt")
    assert ck["b"] == [1, 2.5, "x", None] and torch.equal(ck["a"], torch.ones(2))
    assert not list(tmp_path.glob(".*tmp"))  # no temporary files left behind


def test_autoencoder_metrics_have_no_elbo(small_digits):
    from pyrovae.api import AE

    x, xv = small_digits
    ae = AE(epochs=2, **SMALL).fit(x, X_val=xv)
    for r in ae.history_:
        assert math.isnan(r["train_elbo"]) and r["train_kl"] == 0
        assert r["train_loss"] == pytest.approx(-r["train_recon"], rel=1e-5)
