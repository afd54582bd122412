"""The training-step speed-ups change nothing but speed.

* The objective validates the first call per (model, guide, input shape) and
  runs later calls with Pyro's validation off; values and gradients equal
  ``Trace_ELBO.differentiable_loss`` exactly on both paths, and the global
  validation settings are left as they were.
* ``IndependentBernoulli`` / ``IndependentNormal`` / ``StandardNormal`` give
  bit-identical log-densities and gradients to ``Bernoulli(...).to_event`` /
  ``Normal(...).to_event`` / ``Normal(0, 1)``, and behave like them under
  ``expand``.
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from pyro.infer.util import is_validation_enabled

from pyrovae.guides.normal import IndependentNormal
from pyrovae.likelihoods.bernoulli import IndependentBernoulli
from pyrovae.models import ModuleSpec, build_module
from pyrovae.objectives import MeanFieldELBO, TraceELBO
from pyrovae.priors.normal import StandardNormal
from pyrovae.training.step import train_step


def _vae(seed=0):
    torch.manual_seed(seed)
    return build_module("vae", ModuleSpec(data_shape=(12,), latent_dim=3, hidden=(16,)))


def _grads(loss, module):
    return torch.autograd.grad(loss, list(module.parameters()))


@pytest.mark.parametrize("num_particles", [1, 3])
@pytest.mark.parametrize(
    "cls, pyro_elbo", [(TraceELBO, Trace_ELBO), (MeanFieldELBO, TraceMeanField_ELBO)]
)
def test_every_call_equals_differentiable_loss_exactly(cls, pyro_elbo, num_particles):
    vae = _vae()
    vae.beta = 0.7
    x = (torch.rand(9, 12) > 0.5).float()
    objective = cls(num_particles=num_particles)
    pyro_loss = pyro_elbo(num_particles=num_particles, max_plate_nesting=1)
    for seed in (1, 2, 3):  # the first call validates, the later ones do not
        pyro.set_rng_seed(seed)
        ours = objective(vae.model, vae.guide, x).loss
        pyro.set_rng_seed(seed)
        ref = pyro_loss.differentiable_loss(vae.model, vae.guide, x)
        assert torch.equal(ours, ref)
        for a, b in zip(_grads(ours, vae), _grads(ref, vae), strict=True):
            assert torch.equal(a, b)


def test_validation_runs_once_per_shape_and_settings_are_restored(monkeypatch):
    from pyrovae.objectives import elbo as elbo_module

    seen = []
    original = elbo_module.Objective._evaluate

    def spy(self, model, guide, x, validate):
        seen.append((validate, is_validation_enabled(), dist.is_validation_enabled()))
        return original(self, model, guide, x, validate)

    monkeypatch.setattr(elbo_module.Objective, "_evaluate", spy)
    vae = _vae()
    objective = TraceELBO()
    default_torch = torch.distributions.Distribution._validate_args
    assert is_validation_enabled()
    for n in (8, 8, 8, 5, 5):
        objective(vae.model, vae.guide, torch.rand(n, 12).round())
    assert seen == [
        (True, True, True),
        (False, False, False),
        (False, False, False),
        (True, True, True),
        (False, False, False),
    ]
    assert is_validation_enabled() and dist.is_validation_enabled()
    assert torch.distributions.Distribution._validate_args == default_torch

    seen.clear()
    TraceELBO(always_validate=True)(vae.model, vae.guide, torch.rand(8, 12).round())
    with pyro.validation_enabled(False):
        objective(vae.model, vae.guide, torch.rand(3, 12).round())
    assert seen == [(True, True, True), (False, False, False)]


def test_failed_validation_is_not_remembered():
    """A guide that forgets the data plate fails Pyro's site-shape check, every call."""
    vae = _vae()

    def guide_without_plate(x):
        pyro.sample("z", dist.Normal(torch.zeros(x.shape[0], 3), 1.0).to_event(1))

    objective = TraceELBO()
    x = torch.rand(4, 12).round()
    for _ in range(2):
        with pytest.raises(ValueError, match="invalid log_prob shape"):
            objective(vae.model, guide_without_plate, x)


def test_nan_loss_warns_without_validation():
    vae = _vae()
    objective = TraceELBO()
    x = torch.rand(4, 12).round()
    objective(vae.model, vae.guide, x)  # validated first call
    with torch.no_grad():
        vae.decoder.net[-1].bias.fill_(float("nan"))
    with pytest.warns(UserWarning, match="Encountered NaN: loss"):
        objective(vae.model, vae.guide, x)


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


def test_independent_bernoulli_matches_torch():
    """The closed-form log-likelihood equals torch's Bernoulli to float rounding
    (1e-5), in value and gradient, also for values broadcast over sample dimensions."""
    logits = torch.randn(3, 5, 2, 7, requires_grad=True)
    x = torch.rand(5, 2, 7)  # grey levels: the identity holds for any x in [0, 1]
    fast = IndependentBernoulli(dist.Bernoulli(logits=logits, validate_args=False), 2)
    slow = dist.Bernoulli(logits=logits, validate_args=False).to_event(2)
    assert fast.batch_shape == slow.batch_shape and fast.event_shape == slow.event_shape
    lp_fast, lp_slow = fast.log_prob(x), slow.log_prob(x)
    torch.testing.assert_close(lp_fast, lp_slow, rtol=1e-5, atol=1e-5)
    w = torch.randn(3, 5)
    g_fast = torch.autograd.grad((lp_fast * w).sum(), logits)[0]
    g_slow = torch.autograd.grad((lp_slow * w).sum(), logits)[0]
    torch.testing.assert_close(g_fast, g_slow, rtol=1e-5, atol=1e-6)
    # probs-parameterized bases fall back to torch
    probs = IndependentBernoulli(dist.Bernoulli(probs=torch.full((3, 4), 0.3)), 1)
    assert torch.allclose(probs.log_prob(torch.ones(3, 4)), torch.full((3,), 4 * math.log(0.3)))


@pytest.mark.parametrize(
    "make",
    [
        lambda: IndependentBernoulli(dist.Bernoulli(logits=torch.zeros(4, 6)), 1),
        lambda: IndependentNormal(dist.Normal(torch.zeros(4, 6), torch.ones(4, 6)), 1),
    ],
)
def test_expand_is_free_to_the_own_shape_and_real_otherwise(make):
    d = make()
    assert d.expand((4,)) is d
    bigger = d.expand((2, 4))
    assert bigger.batch_shape == (2, 4) and bigger.event_shape == (6,)
    assert type(bigger) is type(d)
    assert bigger.log_prob(d.sample()).shape == (2, 4)


def test_likelihood_guide_and_prior_return_the_fast_distributions():
    vae = _vae()
    x = torch.rand(3, 12)
    q = vae.encode(x)
    p = vae.decode(q.rsample())
    assert isinstance(q, IndependentNormal) and isinstance(q, dist.Independent)
    assert isinstance(p, IndependentBernoulli) and isinstance(p, dist.Independent)
    assert isinstance(vae.prior_distribution().base_dist, StandardNormal)
    assert q.batch_shape == (3,) and q.event_shape == (3,)
    assert p.batch_shape == (3,) and p.event_shape == (12,)


def test_standard_normal_is_bit_identical():
    shape = (64, 7)
    scales = torch.logspace(-30, 3, shape[-1])
    z = (torch.randn(shape) * scales).requires_grad_()
    fast = StandardNormal(torch.zeros(7), torch.ones(7)).expand(shape)
    slow = dist.Normal(torch.zeros(7), torch.ones(7)).expand(shape)
    assert type(fast) is StandardNormal
    lp_fast, lp_slow = fast.log_prob(z), slow.log_prob(z)
    assert torch.equal(lp_fast, lp_slow)
    w = torch.randn(shape)
    g_fast = torch.autograd.grad((lp_fast * w).sum(), z)[0]
    g_slow = torch.autograd.grad((lp_slow * w).sum(), z)[0]
    assert torch.equal(g_fast, g_slow)
    # other shapes (a sample dim) and dtypes fall back to Normal.log_prob
    z3 = torch.randn(2, 64, 7)
    assert torch.equal(fast.log_prob(z3), slow.log_prob(z3))
    assert torch.equal(fast.log_prob(z.double()), slow.log_prob(z.double()))
    # the KL registered for Normal pairs still applies
    q = dist.Normal(torch.randn(64, 7), torch.rand(64, 7) + 0.5)
    assert torch.equal(
        torch.distributions.kl_divergence(q, fast), torch.distributions.kl_divergence(q, slow)
    )
