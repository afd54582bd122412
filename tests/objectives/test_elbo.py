"""The beta-VAE objective against a hand computation.

With z = mu + sigma * eps, a single-sample Trace_ELBO loss is
    -log p(x|z) - beta (log p(z) - log q(z|x)),
and TraceMeanField_ELBO's is -log p(x|z) + beta KL(q || p) with the Gaussian KL
in closed form. Both must hold with beta applied by poutine.scale in model
*and* guide. Densities below are written out by hand, not with Pyro.
"""

from __future__ import annotations

import math

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from torch.nn import functional as F

from pyrovae import sites
from pyrovae.models import ModuleSpec, build_module
from pyrovae.objectives import OBJECTIVES, MeanFieldELBO, TraceELBO

LOG_2PI = math.log(2 * math.pi)


def _vae(latent_dim=3, likelihood="bernoulli"):
    torch.manual_seed(0)
    return build_module(
        "vae",
        ModuleSpec(data_shape=(6,), latent_dim=latent_dim, hidden=(8,), likelihood=likelihood),
    )


def _normal_logpdf(z, loc, scale):
    return (-0.5 * ((z - loc) / scale) ** 2 - torch.log(scale) - 0.5 * LOG_2PI).sum(-1)


def _hand_terms(vae, x, eps):
    """(log p(x|z), log p(z), log q(z|x), analytic KL) per data point, by hand."""
    feats = vae.encoder(x)
    loc, scale = vae.guide_head.loc_scale(feats)
    z = loc + scale * eps
    logits = vae.decoder(z)[:, 0]
    log_px = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
    log_pz = _normal_logpdf(z, torch.zeros_like(z), torch.ones_like(z))
    log_qz = _normal_logpdf(z, loc, scale)
    kl = (0.5 * (loc**2 + scale**2 - 1) - torch.log(scale)).sum(-1)
    return log_px, log_pz, log_qz, kl


@pytest.mark.parametrize("beta", [0.5, 1.0, 4.0])
@pytest.mark.parametrize("objective", ["trace", "meanfield"])
def test_loss_is_recon_plus_beta_kl(beta, objective):
    vae = _vae()
    x = (torch.rand(5, 6) > 0.5).float()
    pyro.set_rng_seed(123)
    terms = OBJECTIVES.get(objective)()(vae.model, vae.guide, x, beta=beta)
    pyro.set_rng_seed(123)
    eps = torch.randn(5, 3)
    log_px, log_pz, log_qz, kl = _hand_terms(vae, x, eps)
    if objective == "trace":
        expected = -(log_px + beta * (log_pz - log_qz)).sum()
        kl_expected = log_qz - log_pz
    else:
        expected = (-log_px + beta * kl).sum()
        kl_expected = kl
    torch.testing.assert_close(terms.loss, expected, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(terms.recon, log_px.detach(), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(terms.kl, kl_expected.detach(), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("beta", [0.5, 4.0])
def test_beta_scales_latent_site_in_model_and_guide(beta):
    vae = _vae()
    x = torch.rand(4, 6)
    guide_tr = poutine.trace(vae.guide).get_trace(x, beta=beta)
    model_tr = poutine.trace(poutine.replay(vae.model, trace=guide_tr)).get_trace(x, beta=beta)
    assert guide_tr.nodes[sites.LATENT]["scale"] == beta
    assert model_tr.nodes[sites.LATENT]["scale"] == beta
    assert model_tr.nodes[sites.OBS]["scale"] == 1.0
    assert model_tr.nodes[sites.OBS]["is_observed"]
    assert [f.name for f in model_tr.nodes[sites.OBS]["cond_indep_stack"]] == [sites.DATA_PLATE]


@pytest.mark.parametrize(
    "cls, pyro_elbo", [(TraceELBO, Trace_ELBO), (MeanFieldELBO, TraceMeanField_ELBO)]
)
def test_objective_matches_pyro_differentiable_loss(cls, pyro_elbo):
    """Our one-pass loss equals Pyro's own differentiable_loss, value and gradient."""
    vae = _vae()
    x = (torch.rand(7, 6) > 0.5).float()
    pyro.set_rng_seed(5)
    ours = cls()(vae.model, vae.guide, x, beta=2.0).loss
    g_ours = torch.autograd.grad(ours, list(vae.parameters()))
    pyro.set_rng_seed(5)
    elbo = pyro_elbo(max_plate_nesting=1)
    ref = elbo.differentiable_loss(vae.model, vae.guide, x, beta=2.0)
    g_ref = torch.autograd.grad(ref, list(vae.parameters()))
    torch.testing.assert_close(ours, ref)
    for a, b in zip(g_ours, g_ref, strict=True):
        torch.testing.assert_close(a, b)


def test_analytic_and_monte_carlo_kl_agree():
    """Mean MC KL over many draws is within 4 standard errors of the analytic KL."""
    vae = _vae(latent_dim=4)
    x = (torch.rand(3, 6) > 0.5).float().repeat(2000, 1)
    mc = TraceELBO()(vae.model, vae.guide, x).kl.reshape(2000, 3)
    analytic = MeanFieldELBO()(vae.model, vae.guide, x[:3]).kl
    se = mc.std(0) / math.sqrt(2000)
    assert ((mc.mean(0) - analytic).abs() < 4 * se).all()


@pytest.mark.parametrize("objective", ["trace", "meanfield"])
def test_particles_average(objective):
    """K = 3 particles, drawn one after another: the loss, the reconstruction term and
    the KL are the averages over the particles of the single-particle hand computation,
    and the loss's gradient is Pyro's with num_particles=3."""
    vae = _vae()
    x = (torch.rand(4, 6) > 0.5).float()
    pyro.set_rng_seed(17)
    terms = OBJECTIVES.get(objective)(num_particles=3)(vae.model, vae.guide, x, beta=2.0)
    grads = torch.autograd.grad(terms.loss, list(vae.parameters()))
    pyro.set_rng_seed(17)
    losses, recons, kls = [], [], []
    for _ in range(3):
        log_px, log_pz, log_qz, kl = _hand_terms(vae, x, torch.randn(4, 3))
        if objective == "trace":
            losses.append(-(log_px + 2.0 * (log_pz - log_qz)).sum())
            kls.append(log_qz - log_pz)
        else:
            losses.append((-log_px + 2.0 * kl).sum())
            kls.append(kl)
        recons.append(log_px)
    expected = torch.stack(losses).mean()
    assert terms.recon.shape == (4,) and terms.kl.shape == (4,)
    torch.testing.assert_close(terms.loss, expected, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(terms.recon, torch.stack(recons).mean(0).detach())
    torch.testing.assert_close(terms.kl, torch.stack(kls).mean(0).detach())
    assert not torch.allclose(recons[0], recons[1])  # the particles differ
    expected_grads = torch.autograd.grad(expected, list(vae.parameters()))
    for a, b in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_autoencoder_loss_is_negative_log_likelihood():
    torch.manual_seed(0)
    ae = build_module("ae", ModuleSpec(data_shape=(6,), latent_dim=2, hidden=(8,)))
    ae.eval()
    x = (torch.rand(5, 6) > 0.5).float()
    terms = TraceELBO()(ae.model, ae.guide, x)
    logits = ae.decoder(ae.code(ae.encoder(x)))[:, 0]
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    torch.testing.assert_close(terms.loss, bce)
    assert (terms.kl == 0).all()
