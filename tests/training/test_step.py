"""The one training step (:func:`pyrovae.training.train_step`): what Pyro's SVI does,
what a hand-written PyTorch step does, skipped when not finite, and the step the
trainer and the throughput benchmark take."""

from __future__ import annotations

import math
import warnings

import pyro
import pytest
import torch
from pyro.infer import Trace_ELBO

from pyrovae.api import VAE
from pyrovae.data import Batch
from pyrovae.models import ModuleSpec, build_module
from pyrovae.objectives import TraceELBO
from pyrovae.training import train_step


@pytest.fixture
def bench(bench_throughput):
    return bench_throughput


def _vae(seed=0):
    torch.manual_seed(seed)
    return build_module("vae", ModuleSpec(data_shape=(12,), latent_dim=3, hidden=(16,)))


def test_train_step_matches_pyro_svi_update():
    """One train_step equals Adam on Pyro's differentiable_loss / B."""
    a, b = _vae(4), _vae(4)
    x = (torch.rand(6, 12) > 0.5).float()
    opt_a = torch.optim.Adam(a.parameters(), lr=1e-2)
    opt_b = torch.optim.Adam(b.parameters(), lr=1e-2)
    objective = TraceELBO()
    for step in range(3):
        pyro.set_rng_seed(step)
        train_step(a, objective, opt_a, x)
        pyro.set_rng_seed(step)
        opt_b.zero_grad()
        (Trace_ELBO(max_plate_nesting=1).differentiable_loss(b.model, b.guide, x) / 6).backward()
        opt_b.step()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_train_step_passes_beta_and_the_divisor():
    """beta reaches both programs; the loss backpropagated is loss / divisor."""
    a, b = _vae(1), _vae(1)
    x = (torch.rand(5, 12) > 0.5).float()
    opt_a = torch.optim.SGD(a.parameters(), lr=0.1)
    opt_b = torch.optim.SGD(b.parameters(), lr=0.1)
    pyro.set_rng_seed(3)
    terms = train_step(a, TraceELBO(direct=False), opt_a, Batch(x), 0.25, divisor=2.0)
    pyro.set_rng_seed(3)
    opt_b.zero_grad()
    ref = Trace_ELBO(max_plate_nesting=1).differentiable_loss(b.model, b.guide, x, beta=0.25)
    (ref / 2.0).backward()
    opt_b.step()
    assert terms.finite and torch.equal(terms.loss, ref)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_a_non_finite_step_is_skipped():
    """A NaN loss: the gradients are computed and checked, the optimizer step is not
    taken (the weights and Adam's state stay as they were)."""
    module = _vae(2)
    opt = torch.optim.Adam(module.parameters(), lr=1e-2)
    before = [p.detach().clone() for p in module.parameters()]

    def nan_objective(model, guide, batch, beta=1.0):
        terms = TraceELBO()(model, guide, batch, beta=beta)
        terms.loss = terms.loss * math.nan
        return terms

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pyro warns of NaN in the backward pass
        terms = train_step(module, nan_objective, opt, (torch.rand(4, 12) > 0.5).float())
    assert not terms.finite and not opt.state
    for p, q in zip(module.parameters(), before, strict=True):
        assert torch.equal(p, q)


def test_the_trainer_takes_train_step(small_digits, monkeypatch):
    """Every optimizer step of the trainer is one call of train_step, at the schedule's
    beta of the middle of the step (a linear warm-up over 2 epochs of 5 steps)."""
    from pyrovae.training import trainer as trainer_module

    calls = []

    def spy(module, objective, optimizer, batch, beta=1.0, **kwargs):
        calls.append((len(batch), beta))
        return train_step(module, objective, optimizer, batch, beta, **kwargs)

    monkeypatch.setattr(trainer_module, "train_step", spy)
    x, xv = small_digits  # 300 rows: 5 steps of 64 per epoch (the last of 44)
    vae = VAE(hidden=(8,), latent_dim=2, batch_size=64, epochs=2, beta_schedule="linear",
              beta_warmup=2).fit(x, X_val=xv)  # fmt: skip
    assert [n for n, _ in calls] == [64, 64, 64, 64, 44] * 2
    assert [b for _, b in calls] == pytest.approx([(i + 0.5) / 5 / 2 for i in range(10)])
    assert vae.n_epochs_ == 2


def test_training_trajectories_agree(bench):
    """A few Adam steps from the same start on the same batches stay together."""
    module, reference, objective, opt_p, opt_r = bench.build_pair(seed=0)
    batches = bench.synthetic_binary(64, seed=5).split(16)
    for i, xb in enumerate(batches):
        torch.manual_seed(100 + i)
        lp = train_step(module, objective, opt_p, xb).loss
        torch.manual_seed(100 + i)
        lr = bench.reference_step(reference, opt_r, xb)
        torch.testing.assert_close(lp.detach(), lr.detach(), rtol=1e-4, atol=1e-3)
    # The two compute the Bernoulli term with different (equal up to rounding) formulas;
    # Adam normalises gradients, so a weight whose gradient is ~0 can move by up to lr
    # per step either way. Hence: almost all weights agree to 1e-5, none beyond 4 steps x lr.
    diff = (module.decoder.net[2].weight - reference.dec_out.weight).abs()
    assert (diff > 1e-5).float().mean() < 1e-3
    assert diff.max() <= 4 * 1e-3 + 1e-6
