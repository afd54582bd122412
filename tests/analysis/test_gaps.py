"""Amortization and approximation gaps on probabilistic PCA, where both are known.

For a Gaussian posterior N(mu, C) the best diagonal Gaussian has the exact means and
variances 1 / diag(C^{-1}); its KL to the posterior, the approximation gap, is
0.5 (log det C + sum_i log (C^{-1})_ii). A guide widened by 1.5 has a further,
positive amortization gap that per-point optimisation removes.

The full-covariance and low-rank guides contain the exact posterior, so their
approximation gap is 0; set to the exact posterior, their amortization gap is 0 too,
and set to another Gaussian q it is KL(q || p(z|x)) in closed form.

Standard errors (returned by ``inference_gaps``, see its module docstring): an ELBO
from K draws has s.e. sd(log w) / sqrt(K); the importance-sampled log p(x) has, by the
delta method, sd(w) / (sqrt(K) mean(w)); a gap's is the root sum of squares of its two
terms'. At the exact posterior log w = log p(x) for every draw, so both vanish up to
rounding: those tests run in float64 and allow 4 s.e. plus 1e-9 nats of rounding.
"""

from __future__ import annotations

import pytest
import torch
from torch.distributions import kl_divergence

from pyrovae.analysis.gaps import inference_gaps
from pyrovae.guides import GUIDES
from pyrovae.inference.loglik import elbo_terms
from pyrovae.models import ModuleSpec, build_module

#: Rounding allowed on float64 log densities of a few nats.
ROUND = 1e-9

#: A loading matrix whose posterior correlation is -0.87, so that a diagonal Gaussian
#: is far from it (the best one loses 0.71 nats).
W_CORRELATED = [[1.0, 0.8], [0.9, 1.1], [0.5, 0.3], [-0.4, -0.6], [0.2, 0.3]]


def test_gaps_match_closed_form(ppca_class):
    m = ppca_class(exact=False, widen=1.5)
    torch.manual_seed(0)
    x = m.marginal().sample((20,))
    out = inference_gaps(m, x, steps=400, lr=2e-2, particles=32, eval_particles=4000, samples=3000)
    cov = m.cov_post
    expected = 0.5 * (torch.logdet(cov) + torch.log(torch.linalg.inv(cov).diagonal()).sum())
    s = out["summary"]
    # per-point optimisation recovers the best diagonal Gaussian: 0.02 nats on average
    assert abs(s["approximation_gap"] - expected.item()) < 0.02
    assert s["amortization_gap"] > 0.05
    total = s["log_likelihood"] - s["elbo_amortized"]
    assert abs(total - (s["amortization_gap"] + s["approximation_gap"])) < 1e-4


def _assert_zero(out, key):
    gap, se = out[key], out[f"{key}_se"]
    assert (gap.abs() <= 4 * se + ROUND).all(), (key, gap, se)
    s = out["summary"]
    assert abs(s[key]) <= 4 * s[f"{key}_se"] + ROUND


@pytest.mark.parametrize("guide", ["full", "lowrank"])
def test_exact_guide_has_no_gaps(ppca_class, guide):
    """The guide set to the exact (strongly correlated) posterior: both gaps are 0 within
    Monte Carlo error. Replacing the guide by the diagonal Gaussian of its means and sds
    (as the gaps were once computed) reports an amortization gap of 1.71 and an
    approximation gap of 0.71 nats here."""
    m = ppca_class(exact=True, guide=guide, dtype=torch.float64, w=W_CORRELATED)
    torch.manual_seed(0)
    x = m.marginal().sample((10,))
    out = inference_gaps(m, x, eval_particles=1000, samples=1000)
    _assert_zero(out, "amortization_gap")
    _assert_zero(out, "approximation_gap")
    truth = m.marginal().log_prob(x)
    assert ((out["log_likelihood"] - truth).abs() <= 4 * out["log_likelihood_se"] + ROUND).all()


@pytest.mark.parametrize("guide", ["full", "lowrank"])
def test_amortization_gap_of_a_wrong_gaussian_guide_is_its_kl(ppca_class, guide):
    """The guide set to a shifted and widened Gaussian: per-point optimisation in the
    guide's family reaches the exact posterior (approximation gap 0), and the
    amortization gap is KL(q || p(z|x)) in closed form, within 4 s.e. per point."""
    m = ppca_class(exact=True, guide=guide, dtype=torch.float64, w=W_CORRELATED)
    m.set_guide(1.5 * m.cov_post, shift=[0.3, -0.2])
    torch.manual_seed(0)
    x = m.marginal().sample((10,))
    with torch.no_grad():
        kl = kl_divergence(m.encode(x), m.posterior(x))
    assert kl.min() > 0.1
    out = inference_gaps(m, x, eval_particles=1000, samples=1000)
    dev = out["amortization_gap"] - kl
    assert (dev.abs() <= 4 * out["amortization_gap_se"] + ROUND).all(), dev
    _assert_zero(out, "approximation_gap")


@pytest.mark.parametrize("guide", GUIDES.names())
def test_every_registered_guide_is_scored_as_itself(ppca_class, guide):
    """For each registered guide (untrained): the amortized ELBO is that of the model's own
    guide program (Pyro's traces, 2000 single-draw ELBOs per point), log p(x) matches
    the closed form and ELBO[q*] stays below it, each within 4 s.e."""
    ref = ppca_class(exact=True, dtype=torch.float64)
    spec = ModuleSpec(
        data_shape=ref.data_shape,
        latent_dim=ref.latent_dim,
        net="linear",
        likelihood="gaussian",
        likelihood_options={"scale": float(ref.likelihood.scale)},
        guide=guide,
    )
    torch.manual_seed(1)
    m = build_module("vae", spec).double().eval()
    with torch.no_grad():
        m.decoder.linear.weight.copy_(ref.W)
        m.decoder.linear.bias.copy_(ref.b)
    x = ref.marginal().sample((8,))
    truth = ref.marginal().log_prob(x)
    out = inference_gaps(m, x, steps=300, lr=5e-2, eval_particles=2000, samples=2000)
    k = 2000
    recon, kl = elbo_terms(m, x.repeat(k, 1), particles=1)
    single = (recon - kl).reshape(k, x.shape[0])
    se = (single.var(0) / k + out["elbo_amortized_se"] ** 2).sqrt()
    assert ((out["elbo_amortized"] - single.mean(0)).abs() <= 4 * se).all()
    assert ((out["log_likelihood"] - truth).abs() <= 4 * out["log_likelihood_se"] + ROUND).all()
    assert (out["approximation_gap"] >= -4 * out["approximation_gap_se"] - ROUND).all()
    s = out["summary"]
    total = s["log_likelihood"] - s["elbo_amortized"]
    assert abs(total - (s["amortization_gap"] + s["approximation_gap"])) < 1e-9
