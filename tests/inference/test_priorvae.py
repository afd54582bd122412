"""A fitted decoder as a prior inside a user's Pyro model (pyrovae.prior_module).

The exact case: the probabilistic PCA model (``ppca_class``: z ~ N(0, I), E[x|z] = W z + b)
as the prior of f, observed at a few entries with Gaussian noise, has the closed-form
posterior z | y ~ N(m, C), C = (I + W_o^T W_o / tau^2)^{-1}, m = C W_o^T (y - b_o) / tau^2;
NUTS over the prior's code must reproduce it within Monte Carlo error.
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import MCMC, NUTS
from pyro.ops.stats import effective_sample_size

import pyrovae
from pyrovae.api import AE, HVAE, VAE, prior_module
from pyrovae.errors import ConfigError
from pyrovae.inference.priorvae import DecoderPrior
from pyrovae.models import ModuleSpec, VAEModule


def fitted(est_cls, module, scaler=None):
    """An estimator whose fitted model is ``module`` (and whose data were scaled so)."""
    est = est_cls(latent_dim=module.latent_dim)
    est.module_ = module
    est.data_info_ = {"scaler": scaler} if scaler else {}
    return est


def test_top_level_name_is_the_api_function():
    assert pyrovae.prior_module is prior_module


def test_sites_and_output(ppca_class):
    ppca = ppca_class(exact=True)
    prior = prior_module(fitted(VAE, ppca), "gp")
    tr = poutine.trace(prior).get_trace()
    assert [n for n, s in tr.nodes.items() if s["type"] == "sample"] == ["gp_z", "gp_f"]
    z, f = tr.nodes["gp_z"]["value"], tr.nodes["gp_f"]["value"]
    assert z.shape == (ppca.latent_dim,) and f.shape == ppca.data_shape
    assert tr.nodes["gp_z"]["fn"].event_shape == (ppca.latent_dim,)
    assert not tr.nodes["gp_z"]["is_observed"]
    torch.testing.assert_close(f, ppca.W @ z + ppca.b)
    torch.testing.assert_close(tr.nodes["_RETURN"]["value"], f)
    expected = dist.Normal(0.0, 1.0).expand([ppca.latent_dim]).to_event(1).log_prob(z)
    torch.testing.assert_close(tr.nodes["gp_z"]["fn"].log_prob(z), expected)


def test_frozen_copy_not_in_the_param_store(ppca_class):
    ppca = ppca_class(exact=True)
    prior = prior_module(fitted(VAE, ppca), "f")
    assert all(p.requires_grad for p in ppca.parameters())  # the fitted model is untouched
    assert not any(p.requires_grad for p in prior.module.parameters())
    assert not prior.module.training and prior.module is not ppca
    z = torch.zeros(ppca.latent_dim, requires_grad=True)
    prior.decode(z).sum().backward()  # gradients flow to z only
    torch.testing.assert_close(z.grad, ppca.W.sum(0))
    poutine.trace(prior).get_trace()
    assert len(pyro.get_param_store()) == 0


def test_outputs_and_data_units(ppca_class):
    ppca = ppca_class(exact=True)
    shift, scale = torch.arange(5.0), torch.linspace(1.0, 3.0, 5)
    est = fitted(VAE, ppca, {"method": "standardize", "shift": shift, "scale": scale})
    z = torch.randn(3, ppca.latent_dim)
    mean = z @ ppca.W.T + ppca.b
    torch.testing.assert_close(prior_module(est, "f").decode(z), mean * scale + shift)
    torch.testing.assert_close(prior_module(est, "f", output="loc").decode(z), mean * scale + shift)
    torch.testing.assert_close(prior_module(est, "f", units="model").decode(z), mean)
    sd = prior_module(est, "f", output="stddev").decode(z)
    torch.testing.assert_close(sd, (0.5 * scale).expand(3, 5))


def test_bad_requests(ppca_class):
    est = fitted(VAE, ppca_class(exact=True))
    with pytest.raises(ConfigError, match="output 'probs' is not one of"):
        prior_module(est, "f", output="probs")
    with pytest.raises(ConfigError, match="units must be one of"):
        prior_module(est, "f", units="pixels")
    with pytest.raises(ConfigError, match="non-empty string"):
        prior_module(est, "")
    with pytest.raises(ConfigError, match="not fitted"):
        prior_module(VAE(), "f")


def test_autoencoders_have_no_prior(tabular):
    ae = AE(latent_dim=2, likelihood="gaussian", epochs=1, hidden=(8,)).fit(tabular)
    with pytest.raises(ConfigError, match="latent variables"):
        prior_module(ae, "f")


def test_hierarchical_prior_program(tabular):
    hv = HVAE(latent_dim=2, likelihood="gaussian", epochs=1, hidden=(8,)).fit(tabular)
    prior = prior_module(hv, "h")
    tr = poutine.trace(prior).get_trace()
    assert [n for n, s in tr.nodes.items() if s["type"] == "sample"] == ["h_z2", "h_z", "h_f"]
    z1 = tr.nodes["h_z"]["value"]
    torch.testing.assert_close(tr.nodes["h_f"]["value"], hv.module_.decode(z1).mean)


@pytest.mark.parametrize("jit", [False, True], ids=["python", "jit"])
def test_nuts_over_the_code_matches_the_closed_form(ppca_class, jit):
    ppca = ppca_class(exact=True)
    prior = prior_module(fitted(VAE, ppca), "f")
    idx, tau = torch.tensor([0, 2, 4]), 0.3
    y = torch.tensor([0.5, -1.0, 2.0])

    def model(y):
        f = prior()
        pyro.sample("y", dist.Normal(f[idx], tau).to_event(1), obs=y)

    w_o, b_o = ppca.W[idx], ppca.b[idx]
    cov = torch.linalg.inv(torch.eye(2) + w_o.T @ w_o / tau**2)
    mean = cov @ w_o.T @ (y - b_o) / tau**2
    sd = cov.diagonal().sqrt()

    pyro.set_rng_seed(1)
    mcmc = MCMC(
        NUTS(model, jit_compile=jit, ignore_jit_warnings=True),
        num_samples=600,
        warmup_steps=300,
        disable_progbar=True,
    )
    mcmc.run(y)
    z = mcmc.get_samples()["f_z"]
    assert len(pyro.get_param_store()) == 0
    ess = effective_sample_size(z.unsqueeze(0))  # (L,)
    # 5 Monte Carlo standard errors: the mean's sd / sqrt(ESS), the sd's about sd / sqrt(2 ESS)
    assert ((z.mean(0) - mean).abs() <= 5 * sd / ess.sqrt()).all(), (z.mean(0), mean, ess)
    assert ((z.std(0) - sd).abs() <= 5 * sd / (2 * ess).sqrt()).all(), (z.std(0), sd, ess)
    assert math.isfinite(float(ess.min())) and float(ess.min()) > 50


def test_outputs_without_units_are_refused_in_data_units():
    module = VAEModule(
        ModuleSpec(data_shape=(5,), latent_dim=2, net="linear", likelihood="bernoulli")
    )
    with pytest.raises(ConfigError, match="no data units"):
        DecoderPrior(module, "f", output="probs", shift=torch.zeros(5), scale=torch.ones(5))
    prior = DecoderPrior(module, "f", output="logits")  # the model's units
    z = torch.randn(4, 2)
    torch.testing.assert_close(prior.decode(z), module.decoder(z).squeeze(-2))
    torch.testing.assert_close(DecoderPrior(module, "f").decode(z), module.decode(z).mean)
