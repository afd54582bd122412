"""Divergence: NaN/inf in the loss or the gradients is caught at the step, the step is
skipped, and training stops with one line or rolls back with a lower learning rate."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from pyrovae.api import VAE, resume
from pyrovae.cli import main
from pyrovae.training import TrainingError, load_checkpoint, step_is_finite
from pyrovae.training.checkpoint import previous_path

SMALL = dict(hidden=(32,), latent_dim=2, batch_size=64, patience=0)  # 5 steps per epoch


class Poisoned:
    """Wraps an objective: on the training calls listed in ``at`` (1-based, counting only
    calls with gradients enabled) the loss, or only the gradient, becomes non-finite."""

    def __init__(self, inner, at, gradient_only: bool = False) -> None:
        self.inner, self.at, self.gradient_only = inner, at, gradient_only
        self.calls = 0

    def __call__(self, model, guide, batch, beta=1.0):
        terms = self.inner(model, guide, batch, beta=beta)
        if not torch.is_grad_enabled():
            return terms
        self.calls += 1
        if self.at(self.calls):
            if self.gradient_only:  # value + sqrt(0): finite value, infinite gradient
                p = next(model.__self__.parameters()).reshape(-1)[0]
                terms.loss = terms.loss + torch.sqrt(p - p.detach())
            else:
                terms.loss = terms.loss * math.nan
        return terms

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _fit(est, x, xv, run_dir, poison):
    """Fit ``est`` with its training objective wrapped by ``poison``."""
    from pyrovae.data.validation import as_data_tensor

    x = as_data_tensor(x, name="X")
    xv = as_data_tensor(xv, name="X_val")
    import pyro

    est.check_params()
    pyro.set_rng_seed(est.seed)
    est.build(tuple(x.shape[1:]), "bernoulli")
    trainer = est.make_trainer(run_dir, None)
    trainer.objective = poison(trainer.objective)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pyro warns "Encountered NaN: loss"
        return est.fit_with(trainer, x, xv), trainer


def _weights_finite(state) -> bool:
    return all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_step_check_sees_nan_and_inf():
    w = torch.nn.Parameter(torch.ones(3))
    (w * 2).sum().backward()
    assert step_is_finite(torch.tensor(1.0), [w])
    assert not step_is_finite(torch.tensor(math.nan), [w])
    assert not step_is_finite(torch.tensor(math.inf), [w])
    w.grad[1] = math.nan
    assert not step_is_finite(torch.tensor(1.0), [w])
    w.grad[1] = -math.inf
    assert not step_is_finite(torch.tensor(1.0), [w])


def test_stop_with_one_line_and_finite_weights(small_digits, tmp_path):
    x, xv = small_digits
    est = VAE(epochs=5, **SMALL)
    with pytest.raises(TrainingError) as err:  # step 13 = epoch 3, step 3 of 5
        _fit(est, x, xv, tmp_path, lambda o: Poisoned(o, lambda k: k == 13))
    msg = str(err.value)
    assert "\n" not in msg
    assert "diverged in epoch 3, step 3 of 5" in msg and "the loss became nan" in msg
    assert "--on-divergence rollback" in msg
    # NaN never reached the weights, and the checkpoint is the last good epoch
    assert _weights_finite(est.module_.state_dict())
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["trainer"]["epoch"] == 2 and _weights_finite(ckpt["module"])


def test_gradient_only_divergence_is_caught(small_digits):
    x, xv = small_digits
    est = VAE(epochs=2, **SMALL)
    with pytest.raises(TrainingError, match="a gradient became NaN/inf"):
        _fit(est, x, xv, None, lambda o: Poisoned(o, lambda k: k == 4, gradient_only=True))
    assert _weights_finite(est.module_.state_dict())
    for state in est.trainer_.optimizer.state.values():  # nor Adam's moments
        assert all(torch.isfinite(t).all() for t in state.values())


def test_rollback_lowers_the_learning_rate_and_finishes(small_digits, tmp_path):
    x, xv = small_digits
    est = VAE(epochs=4, on_divergence="rollback", rollback_lr_factor=0.5, **SMALL)
    est, trainer = _fit(est, x, xv, tmp_path, lambda o: Poisoned(o, lambda k: k == 13))
    assert est.n_epochs_ == 4 and [r["epoch"] for r in est.history_] == [1, 2, 3, 4]
    # epochs 1-2 at the original rate; epoch 3 was rolled back to its start and redone
    assert [r["lr"] for r in est.history_] == pytest.approx([1e-3, 1e-3, 5e-4, 5e-4])
    (rb,) = trainer.rollbacks
    assert rb["epoch"] == 2 and rb["step"] == 10 and rb["lr"] == pytest.approx(5e-4)
    assert rb["diverged_at"] == "epoch 3, step 3 of 5"
    for path in (tmp_path / "checkpoint.pt", previous_path(tmp_path / "checkpoint.pt")):
        ckpt = load_checkpoint(path)
        assert _weights_finite(ckpt["module"]) and _weights_finite(ckpt["trainer"]["best_module"])
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["trainer"]["lr_scale"] == 0.5 and len(ckpt["trainer"]["rollbacks"]) == 1
    assert ckpt["trainer"]["optimizer"]["param_groups"][0]["lr"] == pytest.approx(5e-4)


def test_rollback_replays_the_same_batches(small_digits):
    """After a rollback the epoch restarts from the checkpoint's RNG states: with the
    rate factor close to 1 the redone epoch almost equals an undisturbed one."""
    x, xv = small_digits
    clean = VAE(epochs=3, **SMALL).fit(x, X_val=xv)
    est = VAE(epochs=3, on_divergence="rollback", rollback_lr_factor=0.999999, **SMALL)
    est, _ = _fit(est, x, xv, None, lambda o: Poisoned(o, lambda k: k == 7))
    for a, b in zip(clean.history_, est.history_, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)


def test_rollback_gives_up_after_the_retries(small_digits, tmp_path):
    x, xv = small_digits
    est = VAE(epochs=4, on_divergence="rollback", divergence_retries=2, **SMALL)
    with pytest.raises(TrainingError) as err:
        _fit(est, x, xv, tmp_path, lambda o: Poisoned(o, lambda k: k >= 8))
    msg = str(err.value)
    assert "\n" not in msg and "after 2 rollback(s)" in msg and "0.00025" in msg
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["trainer"]["epoch"] == 1 and _weights_finite(ckpt["module"])


def test_rollback_count_survives_resume(small_digits, tmp_path):
    x, xv = small_digits
    est = VAE(epochs=3, on_divergence="rollback", **SMALL)
    _fit(est, x, xv, tmp_path, lambda o: Poisoned(o, lambda k: k == 3))
    resumed = resume(tmp_path, x, xv, epochs=4)
    assert resumed.history_[-1]["lr"] == pytest.approx(5e-4)
    trainer = resumed.trainer_
    assert trainer.lr_scale == 0.5 and len(trainer.rollbacks) == 1


def test_refuses_to_checkpoint_nan_weights(small_digits, tmp_path):
    x, xv = small_digits
    est = VAE(epochs=1, **SMALL).fit(x, X_val=xv, run_dir=tmp_path)
    before = (tmp_path / "checkpoint.pt").read_bytes()
    with torch.no_grad():
        next(est.module_.parameters()).view(-1)[0] = math.nan
    with pytest.raises(TrainingError, match="refusing to write a checkpoint"):
        est.trainer_.save(tmp_path / "checkpoint.pt")
    assert (tmp_path / "checkpoint.pt").read_bytes() == before


def test_cli_stops_with_one_line(tmp_path, capsys, monkeypatch):
    from pyrovae.objectives import TraceELBO

    calls = {"n": 0}
    original = TraceELBO.__call__

    def poisoned(self, model, guide, batch, beta=1.0):
        terms = original(self, model, guide, batch, beta)
        if torch.is_grad_enabled():
            calls["n"] += 1
            if calls["n"] == 30:
                terms.loss = terms.loss * math.nan
        return terms

    monkeypatch.setattr(TraceELBO, "__call__", poisoned)
    run = tmp_path / "run"
    args = ["train", "-o", str(run), "--epochs", "5", "--hidden", "16", "--latent-dim", "2"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        status = main([*args, "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert err[-1].startswith("pyrovae: error: training diverged in epoch 3, step 6 of 12")
    ckpt = load_checkpoint(run / "checkpoint.pt")
    assert ckpt["trainer"]["epoch"] == 2 and _weights_finite(ckpt["module"])


def test_bad_divergence_options_are_one_line(small_digits):
    from pyrovae.config import coerce
    from pyrovae.errors import ConfigError

    with pytest.raises(ConfigError, match="on_divergence"):
        coerce("on_divergence", "panic")
    with pytest.raises(ConfigError, match="rollback_lr_factor"):
        coerce("rollback_lr_factor", 1.5)
    with pytest.raises(ConfigError, match="on_divergence must be one of"):
        VAE(on_divergence="pray", **SMALL).fit(small_digits[0])
    with pytest.raises(ConfigError, match="divergence_retries"):
        VAE(divergence_retries=-1, **SMALL).fit(small_digits[0])
