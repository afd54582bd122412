"""Trainer: metrics, checkpoints, resume, early stopping, reproducibility."""

from __future__ import annotations

import csv
import math

import pytest
import torch

from pyrovae.api import VAE, resume
from pyrovae.data import Batch
from pyrovae.models import ModuleSpec, build_module
from pyrovae.models.base import HELD_OUT_DRAWS
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
    for r, h in zip(rows, vae.history_, strict=True):
        assert float(r["train_elbo"]) == pytest.approx(
            float(r["train_recon"]) - float(r["train_kl"]), abs=1e-3
        )
        assert float(r["val_kl"]) >= 0
        # every column is the epoch's value, written with 6 significant digits
        for name in METRIC_COLUMNS:
            assert float(r[name]) == pytest.approx(h[name], rel=1e-5, abs=1e-12), name
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


def _record_weights_per_epoch(monkeypatch) -> list[dict]:
    """A list that receives a copy of the module's weights at the end of every epoch."""
    from pyrovae.training.trainer import Trainer

    seen: list[dict] = []
    real = Trainer._epoch

    def epoch(self, *args, **kwargs):
        before = self.epoch
        real(self, *args, **kwargs)
        if self.epoch > before:  # an epoch was completed
            seen.append({k: v.clone() for k, v in self.module.state_dict().items()})

    monkeypatch.setattr(Trainer, "_epoch", epoch)
    return seen


def _assert_weights(state: dict, expected: dict) -> None:
    assert state.keys() == expected.keys()
    for name, value in state.items():
        assert torch.equal(value, expected[name]), name


def _differ(a: dict, b: dict) -> bool:
    return any(not torch.equal(a[k], b[k]) for k in a)


def test_training_stops_early_and_restores_best(small_digits, tmp_path, monkeypatch):
    x, xv = small_digits
    per_epoch = _record_weights_per_epoch(monkeypatch)
    vae = VAE(epochs=50, patience=1, learning_rate=1e-7, **SMALL)
    vae.fit(x, X_val=xv, run_dir=tmp_path)
    assert vae.stopped_early_ and vae.n_epochs_ < 50
    best = min(vae.history_, key=lambda r: r["val_loss"])
    assert vae.best_epoch_ == best["epoch"] < vae.n_epochs_
    # the weights in use are those of the best epoch, which the checkpoint keeps as best
    assert len(per_epoch) == vae.n_epochs_
    _assert_weights(vae.module_.state_dict(), per_epoch[vae.best_epoch_ - 1])
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    _assert_weights(ckpt["trainer"]["best_module"], per_epoch[vae.best_epoch_ - 1])
    _assert_weights(ckpt["module"], per_epoch[-1])


def test_best_and_last_weights_after_fit_and_load(small_digits, tmp_path, monkeypatch):
    """Scripted held-out losses make epoch 6 of 9 the best: after fit and after load
    (weights="best", the default) the module holds epoch 6's weights; weights="last"
    gives epoch 9's."""
    from pyrovae.api import from_checkpoint, load

    _scripted_validation(monkeypatch)
    per_epoch = _record_weights_per_epoch(monkeypatch)
    x, xv = small_digits
    vae = VAE(epochs=9, patience=0, **SMALL).fit(x, X_val=xv, run_dir=tmp_path)
    assert vae.best_epoch_ == 6 and vae.n_epochs_ == 9 and len(per_epoch) == 9
    best, last = per_epoch[5], per_epoch[8]
    assert _differ(best, last)  # so that the comparisons below can tell them apart
    _assert_weights(vae.module_.state_dict(), best)
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    _assert_weights(ckpt["trainer"]["best_module"], best)
    _assert_weights(load(tmp_path).module_.state_dict(), best)
    _assert_weights(from_checkpoint(ckpt, weights="best").module_.state_dict(), best)
    _assert_weights(from_checkpoint(ckpt, weights="last").module_.state_dict(), last)
    # a model saved after fit keeps the best weights too
    vae.save(tmp_path / "saved.pt")
    _assert_weights(load(tmp_path / "saved.pt").module_.state_dict(), best)


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


#: scripted held-out losses, by epoch: better at 1, 2 and 6, worse otherwise
PLATEAU = [5.0, 4.0, 4.5, 4.6, 4.7, 3.0, 3.5, 3.6, 3.7, 3.8]


def _scripted_validation(monkeypatch):
    from pyrovae.training.trainer import Trainer

    real = Trainer.evaluate

    def evaluate(self, x, beta=None):
        out = real(self, x, beta)
        if x is not None and beta is not None:  # the per-epoch held-out score
            out["loss"] = PLATEAU[self.epoch]
        return out

    monkeypatch.setattr(Trainer, "evaluate", evaluate)


def test_learning_rate_decays_after_each_plateau(small_digits, monkeypatch, tmp_path):
    """lr_decay_patience = 2: halved after epochs 4 (2 worse than epoch 2) and 8 (2
    worse than epoch 6), as ReduceLROnPlateau(patience=1) would; the rate of each row
    is the one its epoch trained with."""
    _scripted_validation(monkeypatch)
    x, xv = small_digits
    kw = dict(learning_rate=1e-3, lr_decay_patience=2, lr_decay_factor=0.5, patience=0, **SMALL)
    vae = VAE(epochs=9, **kw).fit(x, X_val=xv)
    lrs = [row["lr"] for row in vae.history_]
    assert lrs == pytest.approx([1e-3] * 4 + [5e-4] * 4 + [2.5e-4])
    # a run resumed between the decays continues with the decayed rate
    VAE(epochs=6, **kw).fit(x, X_val=xv, run_dir=tmp_path)
    resumed = resume(tmp_path, x, xv, epochs=9)
    assert [row["lr"] for row in resumed.history_] == pytest.approx(lrs)
    assert _losses(resumed.history_) == _losses(vae.history_)


def test_learning_rate_decay_is_off_by_default(small_digits, monkeypatch):
    _scripted_validation(monkeypatch)
    x, xv = small_digits
    vae = VAE(epochs=6, patience=0, **SMALL).fit(x, X_val=xv)
    assert {row["lr"] for row in vae.history_} == {1e-3}


@pytest.mark.parametrize(
    "bad", [{"lr_decay_patience": -1}, {"lr_decay_factor": 1.0}, {"lr_decay_factor": 0}]
)
def test_learning_rate_decay_settings_are_checked(small_digits, bad):
    from pyrovae.errors import ConfigError

    x, _ = small_digits
    name = next(iter(bad))
    with pytest.raises(ConfigError, match=name):
        VAE(epochs=1, **bad, **SMALL).fit(x)


def test_validation_scores_a_bayesian_decoder_without_its_weight_kl():
    """The validation rows did not train the weight posterior: the trainer averages their
    scores over the module's ``held_out()`` contexts (draws of θ, no weight KL share), so
    early stopping does not see the weight KL, which changes as q(θ) leaves its start."""
    from pyrovae.objectives import TraceELBO, make_schedule
    from pyrovae.training import Trainer, TrainingOptions, make_adam
    from pyrovae.training.step import eval_step

    torch.manual_seed(0)
    spec = ModuleSpec(
        data_shape=(6,),
        latent_dim=2,
        hidden=(5,),
        decoder_weights={"layers": "all", "init_scale": 0.05},
    )
    module = build_module("vae", spec)
    opts = TrainingOptions(epochs=1, batch_size=8, patience=0)
    trainer = Trainer(
        module, TraceELBO(), make_schedule(1.0), make_adam(module.parameters(), 1e-3), opts
    )
    val = (torch.rand(10, 6, generator=torch.Generator().manual_seed(1)) < 0.4).float()
    torch.manual_seed(3)
    got = trainer.evaluate(val)
    torch.manual_seed(3)
    module.eval()
    losses = []
    with torch.no_grad():
        for context in module.held_out():
            with context:
                losses.append(float(eval_step(module, TraceELBO(), Batch(val)).loss.sum()))
    assert len(losses) == HELD_OUT_DRAWS
    assert got["loss"] == pytest.approx(sum(losses) / len(losses) / 10, rel=1e-6)
    with torch.no_grad():
        weight_share = float(module.decoder_weights.kl()) / 10
    assert weight_share > 1.0  # what the validation loss would carry otherwise
