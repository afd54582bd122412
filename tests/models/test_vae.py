"""The VAE's guide, likelihood and prior hand out the fast distributions."""

from __future__ import annotations

import pyro.distributions as dist
import torch

from pyrovae.guides.normal import IndependentNormal
from pyrovae.likelihoods.bernoulli import IndependentBernoulli
from pyrovae.models import ModuleSpec, build_module
from pyrovae.priors.normal import StandardNormal


def _vae(seed=0):
    torch.manual_seed(seed)
    return build_module("vae", ModuleSpec(data_shape=(12,), latent_dim=3, hidden=(16,)))


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
