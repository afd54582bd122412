"""The Pyro-based objectives equal Pyro's ``differentiable_loss`` and validate once.

* The objective validates the first call per (model, guide, input shape) and
  runs later calls with Pyro's validation off; values and gradients equal
  ``Trace_ELBO.differentiable_loss`` exactly on both paths, and the global
  validation settings are left as they were.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from pyro.infer.util import is_validation_enabled

from pyrovae.models import ModuleSpec, build_module
from pyrovae.objectives import MeanFieldELBO, TraceELBO


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
    x = (torch.rand(9, 12) > 0.5).float()
    objective = cls(num_particles=num_particles)
    pyro_loss = pyro_elbo(num_particles=num_particles, max_plate_nesting=1)
    for seed in (1, 2, 3):  # the first call validates, the later ones do not
        pyro.set_rng_seed(seed)
        ours = objective(vae.model, vae.guide, x, beta=0.7).loss
        pyro.set_rng_seed(seed)
        ref = pyro_loss.differentiable_loss(vae.model, vae.guide, x, beta=0.7)
        assert torch.equal(ours, ref)
        for a, b in zip(_grads(ours, vae), _grads(ref, vae), strict=True):
            assert torch.equal(a, b)


def test_validation_runs_once_per_shape_and_settings_are_restored(monkeypatch):
    from pyrovae.objectives import elbo as elbo_module

    seen = []
    original = elbo_module.PyroELBO._evaluate

    def spy(self, model, guide, batch, beta, validate):
        seen.append((validate, is_validation_enabled(), dist.is_validation_enabled()))
        return original(self, model, guide, batch, beta, validate)

    monkeypatch.setattr(elbo_module.PyroELBO, "_evaluate", spy)
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

    def guide_without_plate(batch, beta=1.0):
        pyro.sample("z", dist.Normal(torch.zeros(len(batch), 3), 1.0).to_event(1))

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
