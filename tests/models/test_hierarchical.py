"""The hierarchical VAE's two guide orders, and the VampPrior on its top layer."""

from __future__ import annotations

import pytest
import torch
from pyro import poutine

from pyrovae import sites
from pyrovae.analysis import log_likelihood
from pyrovae.analysis.selection import generative_parameters
from pyrovae.api import HVAE
from pyrovae.errors import ConfigError
from pyrovae.models import ModuleSpec, build_module


def _module(**opts):
    spec = ModuleSpec(
        data_shape=(12,),
        latent_dim=6,
        hidden=(16,),
        prior=opts.pop("prior", "normal"),
        model_options={"top_dim": 3, **opts},
    )
    return build_module("hvae", spec)


def test_top_from_x_guide_draws_z2_from_the_data_then_z1_from_both():
    torch.manual_seed(0)
    m = _module(top_from_x=True)
    x = torch.rand(5, 12).round()
    tr = poutine.trace(m.guide).get_trace(x)
    order = [n for n, s in tr.nodes.items() if s["type"] == "sample" and n != sites.DATA_PLATE]
    assert order == [sites.LATENT_TOP, sites.LATENT]
    h = m.encoder(x)
    z2 = tr.nodes[sites.LATENT_TOP]["value"]
    q2, q1 = m.guide_head(h), m.q_z1(torch.cat([h, z2], -1))
    for site, q in ((sites.LATENT_TOP, q2), (sites.LATENT, q1)):
        fn = tr.nodes[site]["fn"]
        torch.testing.assert_close(fn.mean, q.mean, rtol=0, atol=0)
        torch.testing.assert_close(fn.stddev, q.stddev, rtol=0, atol=0)
    assert z2.shape == (5, 3) and tr.nodes[sites.LATENT]["value"].shape == (5, 6)
    # encode is q(z1 | x, z2 = E[z2|x]), the code the decoder reads
    torch.testing.assert_close(m.encode(x).mean, m.q_z1(torch.cat([h, q2.mean], -1)).mean)
    # the importance sampler's vectorized traces broadcast h over the sample dimension
    assert torch.isfinite(log_likelihood(m, x, samples=7)).all()


def test_vamp_prior_on_the_top_layer_is_the_mean_of_q_z2_at_the_pseudo_inputs():
    torch.manual_seed(1)
    m = _module(top_from_x=True, prior="vamp")
    p = m.prior()
    assert p.event_shape == (3,)
    q = m.guide_head(m.encoder(m.prior.pseudo_inputs))
    comp = p.component_distribution
    torch.testing.assert_close(comp.mean, q.mean, rtol=0, atol=0)
    torch.testing.assert_close(comp.stddev, q.stddev, rtol=0, atol=0)
    z = torch.randn(10, 3)
    want = torch.logsumexp(q.log_prob(z.unsqueeze(1)), -1) - torch.log(torch.tensor(50.0))
    torch.testing.assert_close(p.log_prob(z), want, rtol=1e-5, atol=1e-5)


def test_bottom_up_guide_cannot_carry_a_vamp_top_prior():
    with pytest.raises(ConfigError, match="set top_from_x to use a prior built from the guide"):
        _module(prior="vamp")


def _count(m, parts):
    return sum(p.numel() for n in parts for p in getattr(m, n).parameters())


def test_guide_networks_are_not_counted_as_generative_parameters():
    for opts in ({}, {"top_from_x": True}):
        m = _module(**opts)
        assert generative_parameters(m) == _count(m, ("decoder", "likelihood", "prior", "p_z1"))


def test_a_vamp_top_prior_counts_the_networks_that_compute_it():
    """p(z2) = (1/K) sum_k q(z2|u_k) runs through the encoder and the guide head over z2;
    q(z1|x, z2) stays out."""
    m = _module(top_from_x=True, prior="vamp")
    parts = ("decoder", "likelihood", "prior", "p_z1", "encoder", "guide_head")
    assert generative_parameters(m) == _count(m, parts)
    assert _count(m, ("q_z1",)) > 0


def test_estimator_trains_with_a_vamp_top_prior_and_log_px_exceeds_the_elbo(small_digits):
    x, xv = small_digits
    est = HVAE(
        prior="vamp",
        top_from_x=True,
        latent_dim=4,
        top_dim=2,
        hidden=(32,),
        epochs=15,
        seed=0,
        learning_rate=3e-3,
    )
    est.fit(x, X_val=xv)
    assert est.history_[-1]["train_loss"] < est.history_[0]["train_loss"]
    ll = log_likelihood(est.module_, xv, samples=500)
    elbo = est.elbo(xv)
    # a K = 500 importance estimate lies above the K = 1 bound on average (Burda et al.)
    assert float(ll.mean()) > float(elbo.mean())


def test_layer_networks_depth_and_gating():
    from pyrovae.nets.base import GatedLinear

    plain = _module(layer_hidden=5)
    # the default keeps the one-hidden-layer tanh network (and its parameter names)
    assert [type(m).__name__ for m in plain.p_z1.net] == ["Linear", "Tanh", "Linear"]
    deep = _module(top_from_x=True, layer_hidden=5, layer_depth=2, layer_gated=True)
    for layer in (deep.p_z1, deep.q_z1):
        kinds = [type(m) for m in layer.net]
        assert kinds == [GatedLinear, GatedLinear, torch.nn.Linear]
        assert layer.net[-1].in_features == 5
    x = torch.rand(7, 12).bernoulli()
    tr = poutine.trace(deep.guide).get_trace(x)
    lp = poutine.trace(poutine.replay(deep.model, trace=tr)).get_trace(x)
    assert lp.nodes[sites.LATENT]["value"].shape == (7, 6)
    assert torch.isfinite(lp.log_prob_sum())
    with pytest.raises(ConfigError, match="layer_depth must be positive"):
        _module(layer_depth=0)
