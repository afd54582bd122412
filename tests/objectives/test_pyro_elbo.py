"""The Pyro-based objectives equal Pyro's ``differentiable_loss`` and validate once.

* The objective validates the first call per (model, guide, input shape) and
  runs later calls with Pyro's validation off; values and gradients equal
  ``Trace_ELBO.differentiable_loss`` exactly on both paths, and the global
  validation settings are left as they were.
* ``TraceELBO``'s direct route (the family's ``direct_elbo_terms``) reproduces the
  traces' loss to float rounding (1e-6 relative) and their gradients, for every
  registered prior, guide and likelihood; what has no direct form keeps the traces.
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
        if objective.route(vae.model, vae.guide, x) == "direct":
            # the same draws, summed in another order
            assert cls is TraceELBO and num_particles == 1
            assert torch.allclose(ours, ref, rtol=1e-6, atol=0)
            for a, b in zip(_grads(ours, vae), _grads(ref, vae), strict=True):
                assert torch.allclose(a, b, rtol=1e-5, atol=1e-6 * float(b.abs().max()))
            continue
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
    objective = TraceELBO(num_particles=2)  # two particles: no direct route
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


#: Two rows on each support kind's normalised support, 4 features.
_ON_SUPPORT = {
    "binary": [[0.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 1.0]],
    "8bit": [[0.0, 17 / 255, 1.0, 3 / 255], [128 / 255, 1 / 255, 254 / 255, 0.0]],
    "count": [[0.0, 3.0, 25.0, 1.0], [1.0, 0.0, 7.0, 2.0]],
    "unit": [[0.0, 0.3, 1.0, 0.6], [0.5, 0.999, 0.25, 0.0]],
    "open-unit": [[0.1, 0.5, 0.9, 0.2], [0.001, 0.3, 0.999, 0.7]],
    "real": [[-2.0, 0.0, 3.5, 1.0], [1.0, -0.25, 1e-3, 0.5]],
}


def _components():
    from pyrovae.guides import GUIDES
    from pyrovae.likelihoods import LIKELIHOODS
    from pyrovae.priors import PRIORS

    yield from (("prior", n) for n in PRIORS.names())
    yield from (("guide", n) for n in GUIDES.names())
    yield from (("likelihood", n) for n in LIKELIHOODS.names())


@pytest.mark.parametrize("kind, name", list(_components()))
def test_direct_route_reproduces_the_traces(kind, name):
    """For each registered component (the others default), the direct route's loss and
    gradients equal ``Trace_ELBO.differentiable_loss`` on the same draws (to float
    rounding), at beta != 1; a component without a direct form keeps the traces. A
    conditional prior is tested in the cvae, on rows with one covariate each."""
    from pyrovae.data import Batch
    from pyrovae.likelihoods import LIKELIHOODS
    from pyrovae.priors import PRIORS

    torch.manual_seed(0)
    spec = ModuleSpec(data_shape=(4,), latent_dim=2, hidden=(8,), **{kind: name})
    conditional = kind == "prior" and PRIORS.get(name).conditional
    vae = build_module("cvae" if conditional else "vae", spec)
    support = LIKELIHOODS.get(spec.likelihood)((4,)).support_kind
    x = torch.tensor(_ON_SUPPORT[support]).repeat(3, 1)
    if conditional:
        x = Batch(x, vae.targets(torch.linspace(-1, 1, 6)))
    _check_direct_route(vae, x)


@pytest.mark.parametrize("prior", ["normal", "conditional"])
def test_direct_route_of_the_cvae_given_labels(prior):
    from pyrovae.data import Batch

    torch.manual_seed(0)
    opts = {"condition": "label", "condition_dim": 3}
    spec = ModuleSpec(data_shape=(4,), latent_dim=2, hidden=(8,), prior=prior, model_options=opts)
    cvae = build_module("cvae", spec)
    with torch.no_grad():  # away from the conditional prior's zero output layer
        for p in cvae.prior.parameters():
            p.add_(0.5 * torch.randn_like(p))
    x = torch.tensor(_ON_SUPPORT["binary"]).repeat(3, 1)
    _check_direct_route(cvae, Batch(x, cvae.targets([0, 1, 2, 2, 1, 0])))


def _check_direct_route(vae, x):
    objective, ref = TraceELBO(), Trace_ELBO(max_plate_nesting=1)
    objective(vae.model, vae.guide, x, beta=0.3)  # decides the route
    assert objective.route(vae.model, vae.guide, x) == "direct"
    for seed in (4, 5):
        pyro.set_rng_seed(seed)
        ours = objective(vae.model, vae.guide, x, beta=0.3)
        pyro.set_rng_seed(seed)
        expected = ref.differentiable_loss(vae.model, vae.guide, x, beta=0.3)
        assert torch.allclose(ours.loss, expected, rtol=1e-6, atol=1e-6)
        for a, b in zip(_grads(ours.loss, vae), _grads(expected, vae), strict=True):
            assert torch.allclose(a, b, rtol=1e-5, atol=1e-6 * (1 + float(b.abs().max())))


def test_families_without_a_direct_form_keep_the_traces(caplog):
    torch.manual_seed(0)
    hvae = build_module("hvae", ModuleSpec(data_shape=(12,), latent_dim=3, hidden=(16,)))
    x = torch.rand(5, 12).round()
    objective = TraceELBO()
    with caplog.at_level("INFO", logger="pyrovae.objectives.elbo"):
        objective(hvae.model, hvae.guide, x)
    assert objective.route(hvae.model, hvae.guide, x) == "traces"
    assert "runs Pyro's traces: the HierarchicalVAEModule family has no direct ELBO" in caplog.text


def test_a_direct_form_that_disagrees_is_not_used(monkeypatch, caplog):
    from pyrovae.models.vae import VAEModule

    original = VAEModule.direct_elbo_terms

    def off_by_one(self, batch, beta):
        recon, kl = original(self, batch, beta)
        return recon + 1.0, kl

    monkeypatch.setattr(VAEModule, "direct_elbo_terms", off_by_one)
    vae = _vae()
    x = torch.rand(5, 12).round()
    objective = TraceELBO()
    with caplog.at_level("INFO", logger="pyrovae.objectives.elbo"):
        first = objective(vae.model, vae.guide, x).loss
    assert objective.route(vae.model, vae.guide, x) == "traces"
    assert "direct form gives the loss" in caplog.text
    pyro.set_rng_seed(9)
    later = objective(vae.model, vae.guide, x).loss
    pyro.set_rng_seed(9)
    assert torch.equal(
        later, Trace_ELBO(max_plate_nesting=1).differentiable_loss(vae.model, vae.guide, x)
    )
    assert torch.isfinite(first)


def test_objectives_with_a_loss_of_their_own_keep_the_traces():
    """A TraceELBO subclass that computes its own loss (free bits) never takes the route
    of the plain ELBO, even where the two would agree on a first call."""
    from pyrovae.objectives import OBJECTIVES

    vae = _vae()
    x = torch.rand(5, 12).round()
    objective = OBJECTIVES.get("freebits")(free_bits=0.0)
    objective(vae.model, vae.guide, x)
    assert objective.route(vae.model, vae.guide, x) == "traces"
