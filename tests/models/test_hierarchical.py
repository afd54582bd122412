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


@pytest.mark.parametrize("top_from_x", [False, True])
def test_decoder_reading_both_layers_scores_x_given_z1_and_z2(top_from_x):
    """With ``decoder_reads_top`` the model's p(x | .) is the decoder at [z1, z2] (Tomczak
    & Welling's p(x | z1, z2)); the code of sample_latent, encode, prior_program and
    code_of is that concatenation, of size latent_dim + top_dim."""
    torch.manual_seed(3)
    m = _module(top_from_x=top_from_x, decoder_reads_top=True)
    assert m.code_dim == 9 and m.decoder.net[0].in_features == 9
    x = torch.rand(5, 12).round()
    guide_tr = poutine.trace(m.guide).get_trace(x)
    tr = poutine.trace(poutine.replay(m.model, trace=guide_tr)).get_trace(x)
    z1, z2 = tr.nodes[sites.LATENT]["value"], tr.nodes[sites.LATENT_TOP]["value"]
    want = m.likelihood(m.decoder(torch.cat([z1, z2], -1)))
    torch.testing.assert_close(tr.nodes[sites.OBS]["fn"].log_prob(x), want.log_prob(x))
    # z2 changes the likelihood at a fixed z1: the decoder reads it
    other = m.likelihood(m.decoder(torch.cat([z1, z2 + 1.0], -1)))
    assert not torch.allclose(other.log_prob(x), want.log_prob(x))
    assert m.sample_latent(4).shape == (4, 9)
    draws = m.posterior_sample(x, 3)
    torch.testing.assert_close(
        m.code_of(draws), torch.cat([draws[sites.LATENT], draws[sites.LATENT_TOP]], -1)
    )
    q = m.encode(x)
    assert q.mean.shape == (5, 9) and q.sample((2,)).shape == (2, 5, 9)
    h = m.encoder(x)
    if top_from_x:
        q2 = m.guide_head(h)
        q1 = m.q_z1(torch.cat([h, q2.mean], -1))
    else:
        q1 = m.guide_head(h)
        q2 = m.q_z2(q1.mean)
    torch.testing.assert_close(q.mean, torch.cat([q1.mean, q2.mean], -1))
    torch.testing.assert_close(q.stddev, torch.cat([q1.stddev, q2.stddev], -1))
    code = q.sample()
    torch.testing.assert_close(
        q.log_prob(code), q1.log_prob(code[:, :6]) + q2.log_prob(code[:, 6:])
    )
    # the importance sampler's traces and the ELBO run through it
    assert torch.isfinite(log_likelihood(m, x, samples=7)).all()


def test_estimator_with_the_decoder_reading_both_layers_decodes_codes_of_both(small_digits):
    x, xv = small_digits
    est = HVAE(
        prior="vamp",
        top_from_x=True,
        decoder_reads_top=True,
        latent_dim=4,
        top_dim=2,
        hidden=(32,),
        epochs=2,
        seed=0,
    ).fit(x)
    shape = tuple(x.shape[1:])
    assert est.sample(3).shape == (3, *shape)
    assert est.reconstruct(xv[:3]).shape == (3, *shape)
    assert est.decode(torch.zeros(2, 6)).mean.shape == (2, *shape)
    with pytest.raises(Exception, match="decoder reads codes of size 6"):
        est.decode(torch.zeros(2, 4))
