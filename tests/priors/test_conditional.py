"""The conditional prior p(z | c) = N(mu(c), diag sigma(c)^2): its density in closed form,
its shapes, and the families that refuse it."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from pyrovae.errors import ConfigError
from pyrovae.models import ModuleSpec, build_module
from pyrovae.priors import PRIORS, ConditionalNormalPrior


def _bound(width=3, latent=2):
    torch.manual_seed(0)
    prior = ConditionalNormalPrior(latent, hidden=8, condition_dim=width)
    with torch.no_grad():
        for p in prior.parameters():
            p.add_(0.5 * torch.randn_like(p))
    return prior


def test_is_registered_and_conditional():
    assert PRIORS.get("conditional") is ConditionalNormalPrior
    assert ConditionalNormalPrior.conditional
    assert not any(PRIORS.get(n).conditional for n in PRIORS.names() if n != "conditional")


def test_density_is_the_normal_of_its_network():
    """log p(z | c) = sum_d log N(z_d; mu_d(c), sigma_d(c)) by hand, for a batch of codes."""
    prior = _bound()
    c = torch.randn(5, 3)
    z = torch.randn(5, 2)
    h = torch.tanh(prior.net[0](c))
    loc, raw = prior.net[2](h).chunk(2, -1)
    scale = F.softplus(raw) + 1e-4
    want = (-((z - loc) ** 2) / (2 * scale**2) - scale.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
    d = prior(c)
    assert d.batch_shape == (5,) and d.event_shape == (2,)
    torch.testing.assert_close(d.log_prob(z), want)


def test_starts_at_the_same_prior_for_every_condition():
    prior = ConditionalNormalPrior(2, condition_dim=3)
    d = prior(torch.randn(4, 3))
    torch.testing.assert_close(d.mean, torch.zeros(4, 2))
    torch.testing.assert_close(d.stddev, torch.full((4, 2), math.log(2) + 1e-4))


def test_reference_and_sample():
    prior = _bound()
    ref = prior.reference()
    want = prior(torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(ref.mean, want.mean)
    assert ref.batch_shape == () and prior.sample(7).shape == (7, 2)
    assert prior.sample(7, torch.zeros(3)).shape == (7, 2)
    with pytest.raises(ConfigError, match="width 4; the prior reads 3"):
        prior(torch.zeros(4))


@pytest.mark.parametrize("family", ["vae", "hvae"])
def test_unconditional_families_refuse_it(family):
    with pytest.raises(ConfigError, match="use it with a conditional model") as info:
        build_module(family, ModuleSpec(data_shape=(6,), latent_dim=2, prior="conditional"))
    assert "\n" not in str(info.value)


def test_binds_to_the_condition_width_of_the_cvae():
    opts = {"condition": "label", "condition_dim": 7}
    m = build_module(
        "cvae", ModuleSpec(data_shape=(6,), latent_dim=2, prior="conditional", model_options=opts)
    )
    assert m.prior.condition_dim == 7 and m.prior.net[0].in_features == 7
