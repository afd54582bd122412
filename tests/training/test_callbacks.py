"""The trainer's callbacks: the hooks and their order, callback state in checkpoints, the
training options, and the rollback to a save point inside an epoch."""

from __future__ import annotations

import math
import warnings

import pyro
import pytest
import torch

from pyrovae.api import VAE
from pyrovae.config import OPTIONS_BY_NAME
from pyrovae.errors import ConfigError
from pyrovae.models import ModuleSpec, build_module
from pyrovae.objectives import TraceELBO, make_schedule
from pyrovae.training import (
    Callback,
    DivergenceRollback,
    EarlyStopping,
    Trainer,
    TrainingOptions,
    load_checkpoint,
    make_adam,
    standard_callbacks,
)

SMALL = dict(hidden=(32,), latent_dim=2, batch_size=64, patience=0)  # 5 steps per epoch


class Recorder(Callback):
    """Records the events it sees; its state (the number of epochs it saw) resumes."""

    state_key = "recorder"

    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.epochs_seen = 0

    def on_fit_start(self, trainer):
        self.events.append(("fit_start", trainer.epoch, trainer.step))

    def on_step_end(self, trainer):
        self.events.append(("step", trainer.step, trainer.mid_epoch))

    def on_epoch_end(self, trainer):
        self.epochs_seen += 1
        self.events.append(("epoch", trainer.epoch, trainer.history[-1]["epoch"]))

    def on_fit_end(self, trainer):
        self.events.append(("fit_end", trainer.epoch))

    def state_dict(self):
        return {"epochs_seen": self.epochs_seen}

    def load_state_dict(self, state):
        self.epochs_seen = int(state["epochs_seen"])


def _trainer(x, epochs, callbacks, run_dir=None, **options):
    torch.manual_seed(0)
    module = build_module("vae", ModuleSpec(data_shape=tuple(x.shape[1:]), latent_dim=2))
    opts = TrainingOptions(epochs=epochs, batch_size=64, patience=0, **options)
    optimizer = make_adam(module.parameters(), lr=1e-3)
    schedule = make_schedule(1.0)
    return Trainer(module, TraceELBO(), schedule, optimizer, opts, callbacks, run_dir=run_dir)


def test_hooks_run_in_order(small_digits):
    x, xv = small_digits  # 300 rows: 5 steps per epoch
    rec = Recorder()
    _trainer(x, 2, [rec]).fit(x, xv)
    steps = [("step", s, s % 5 != 0) for s in range(1, 11)]
    expected = [("fit_start", 0, 0), *steps[:5], ("epoch", 1, 1), *steps[5:], ("epoch", 2, 2)]
    assert rec.events == [*expected, ("fit_end", 2)]


def test_callback_state_is_saved_and_resumed(small_digits, tmp_path):
    x, xv = small_digits
    rec = Recorder()
    trainer = _trainer(x, 2, [rec], run_dir=tmp_path)
    trainer.fit(x, xv)
    trainer.save(tmp_path / "checkpoint.pt")
    state = load_checkpoint(tmp_path / "checkpoint.pt")["trainer"]
    assert state["recorder"] == {"epochs_seen": 2}
    again = Recorder()
    resumed = _trainer(x, 3, [again])
    resumed.load_state_dict(state)
    assert again.epochs_seen == 2 and resumed.epoch == 2
    resumed.fit(x, xv)
    assert again.epochs_seen == 3 and [e for e in again.events if e[0] == "epoch"] == [
        ("epoch", 3, 3)
    ]


def test_fit_end_runs_when_training_fails(small_digits):
    x, _ = small_digits
    rec = Recorder()

    class Boom(Callback):
        def on_step_end(self, trainer):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        _trainer(x, 2, [rec, Boom()]).fit(x)
    assert rec.events[-1] == ("fit_end", 0)


def test_options_take_their_defaults_and_domains_from_the_config_table():
    opts = TrainingOptions()
    for name in ("epochs", "batch_size", "patience", "seed", "budget_clock", "on_divergence"):
        assert getattr(opts, name) == OPTIONS_BY_NAME[name].default
    params = VAE(epochs=7, lr_decay_factor=0.25, latent_dim=3).get_params()
    opts = TrainingOptions.from_params(params, amp=False)
    assert (opts.epochs, opts.lr_decay_factor) == (7, 0.25)
    with pytest.raises(ConfigError, match="on_divergence must be one of"):
        TrainingOptions(on_divergence="pray")
    with pytest.raises(ConfigError, match="lr_decay_factor must be in"):
        TrainingOptions(lr_decay_factor=1.0)


def test_standard_callbacks_follow_the_options():
    kinds = [type(cb).__name__ for cb in standard_callbacks(TrainingOptions(progress=True))]
    assert kinds == [
        "EarlyStopping",
        "PlateauDecay",
        "ProgressBar",
        "Provenance",
        "MetricsWriter",
        "Checkpointing",
    ]
    rollback = standard_callbacks(TrainingOptions(on_divergence="rollback", checkpoint_every=3))
    assert isinstance(rollback[-1], DivergenceRollback) and rollback[-1].every == 3
    assert isinstance(rollback[0], EarlyStopping)


class PoisonWeights(Callback):
    """Sets a weight to NaN after step ``at``: the next step diverges."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_step_end(self, trainer):
        if trainer.step == self.at and not trainer.rollbacks:
            with torch.no_grad():
                next(trainer.module.parameters()).view(-1)[0] = math.nan


def test_rollback_to_a_save_point_inside_an_epoch(small_digits):
    """With a save point every 2 steps, a divergence at the 4th step (the weights were
    poisoned after the 3rd) goes back to step 2 of the same epoch, not to the epoch's
    start: the epoch continues from there, the step count stays that of an undisturbed
    run, and with the rate factor close to 1 the losses are those of an undisturbed run."""
    x, xv = small_digits
    kw = dict(epochs=3, checkpoint_every=2, **SMALL)
    clean = VAE(**kw).fit(x, X_val=xv)
    est = VAE(on_divergence="rollback", rollback_lr_factor=0.999999, **kw)
    est.check_params()
    pyro.set_rng_seed(est.seed)
    est.build(tuple(x.shape[1:]), "bernoulli")
    trainer = est.make_trainer(None, None)
    trainer.callbacks.append(PoisonWeights(at=3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pyro warns "Encountered NaN: loss"
        est.fit_with(trainer, x, xv)
    (rb,) = trainer.rollbacks
    assert (rb["epoch"], rb["step"], rb["diverged_at"]) == (0, 2, "epoch 1, step 4 of 5")
    assert trainer.step == clean.trainer_.step == 15
    for a, b in zip(clean.history_, est.history_, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
