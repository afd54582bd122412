"""Every posterior analysis reads the guide's joint posterior, not ``encode(x)``.

``CodeAtAPoint`` is probabilistic PCA whose guide is the exact posterior but whose
``encode(x)`` is three times narrower, as the hierarchical VAE's ``encode`` with
``top_from_x`` is q(z1 | x, z2 = E[z2|x]), narrower than the guide's marginal over z1.
An analysis that reads the guide's joint posterior finds the exact posterior; one that
read ``encode`` would find an overconfident guide. Tolerances as in the tests of each
analysis on the exact guide.
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch

from pyrovae import arviz_compat, sites
from pyrovae.analysis import elbo_decomposition, posterior_groups, refine, sbc, to_arviz
from pyrovae.analysis.uncertainty import reconstruction_uncertainty
from pyrovae.inference.loglik import mutual_information
from pyrovae.models import ModuleSpec, Moments, build_module


@pytest.fixture
def code_at_a_point(ppca_class):
    class CodeAtAPoint(ppca_class):
        def joint(self, x):
            return self.guide_head(self.encoder(x))

        def encode(self, x):
            q = self.joint(x)
            return dist.MultivariateNormal(q.mean, scale_tril=q.scale_tril / 3)

        def guide(self, batch, beta=1.0):
            x = self.observed(batch)
            with pyro.plate(sites.DATA_PLATE, x.shape[0]):
                pyro.sample(sites.LATENT, self.joint(x))

        def posterior_sample(self, x, n):
            return {sites.LATENT: self.joint(x).sample((n,))}

        def posterior_moments(self, x, n=1000):
            q = self.joint(x)
            return {sites.LATENT: Moments(q.mean, q.stddev)}

        def posterior_log_prob(self, x, draws):
            return self.joint(x).log_prob(draws[sites.LATENT])

    return CodeAtAPoint(exact=True)


def test_sbc_reads_the_joint_posterior(code_at_a_point):
    out = sbc(code_at_a_point, n=1000, draws=99, seed=0)
    assert out["min_p_value"] > 1e-3
    assert abs(out["coverage_90"] - 0.9).max() < 0.05


def test_nuts_comparison_reads_the_joint_posterior(code_at_a_point):
    m = code_at_a_point
    torch.manual_seed(0)
    x = m.marginal().sample((2,))
    s = refine(m, x, num_samples=300, warmup=200, chains=2, khat_samples=500)["summary"]
    assert abs(s["mean_coverage_90"] - 0.90) < 0.06
    assert abs(s["mean_sd_ratio"] - 1) < 0.15


def test_export_uncertainty_and_mutual_information_read_the_joint_posterior(
    code_at_a_point, ppca_class
):
    m = code_at_a_point
    torch.manual_seed(0)
    x = m.marginal().sample((3,))
    n = 4000
    exact_sd = m.posterior(x).stddev
    z = torch.as_tensor(posterior_groups(m, x, draws=n)["posterior"]["z"][0])
    # the sd of a Normal sample has s.e. sd / sqrt(2 n)
    assert ((z.std(0) - exact_sd).abs() <= 4 * exact_sd / (2 * n) ** 0.5).all()
    # E[x|z] = W z + b: its sd over the posterior is sqrt(diag(W C W^T))
    _, sd = reconstruction_uncertainty(m, x, draws=n)
    want = (m.W @ m.cov_post @ m.W.T).diagonal().sqrt()
    assert ((sd - want).abs() <= 4 * want / (2 * n) ** 0.5).all()
    # the same random numbers give the same I(x; z) as the exact guide's own encode
    data = m.marginal().sample((300,))
    torch.manual_seed(1)
    ours = mutual_information(m, data)
    torch.manual_seed(1)
    assert ours == pytest.approx(mutual_information(ppca_class(exact=True), data), abs=1e-5)


@pytest.mark.parametrize("reads_top", [False, True])
def test_hierarchical_analyses_never_read_encode(monkeypatch, reads_top):
    """On a small hierarchical VAE with top_from_x, SBC, the NUTS comparison, the ArviZ
    export, the decomposition (active units, I(x; z)) and the uncertainty maps all run
    on ``posterior_sample`` / ``posterior_moments`` / ``posterior_log_prob``; the export
    carries both layers."""
    torch.manual_seed(0)
    spec = ModuleSpec(
        data_shape=(6,),
        latent_dim=3,
        hidden=(8,),
        model_options={"top_dim": 2, "top_from_x": True, "decoder_reads_top": reads_top},
    )
    m = build_module("hvae", spec)
    x = torch.rand(4, 6).round()
    calls = []
    for name in ("posterior_sample", "posterior_moments", "posterior_log_prob"):
        real = getattr(m, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            calls.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(m, name, spy)

    def refuse(x):
        raise AssertionError("an analysis read encode(x)")

    monkeypatch.setattr(m, "encode", refuse)
    sbc(m, n=20, draws=9, bins=10)
    assert calls.count("posterior_sample") == 1
    refine(m, x[:1], num_samples=5, warmup=5, chains=2, khat_samples=20)
    assert {"posterior_sample", "posterior_moments"} <= set(calls[1:])
    data = to_arviz(m, x, draws=7)
    post = arviz_compat.group(data, "posterior")
    assert post["z"].shape == (1, 7, 4, 3) and post["z2"].shape == (1, 7, 4, 2)
    out = elbo_decomposition(m, x, particles=2)
    assert out["kl_per_dim"] is None and math.isfinite(out["mutual_info"])
    assert "posterior_log_prob" in calls
    reconstruction_uncertainty(m, x, draws=5)
