"""The "svi" and "nuts" conditioners against the probabilistic PCA's closed forms.

pPCA (``ppca_class``): z ~ N(0, I), x | z ~ N(W z + b, s^2 I). Given the entries x_o
observed where the mask is True, the posterior is Gaussian with precision
Λ = I + W_o^T W_o / s^2 and mean Λ^{-1} W_o^T (x_o - b_o) / s^2, and the missing entries
have the predictive x_m | x_o ~ N(W_m μ + b_m, W_m Λ^{-1} W_m^T + s^2 I) (Tipping & Bishop
1999). NUTS samples the exact posterior; the per-row Gaussian of SVI is mean-field, whose
optimum has the exact mean and the sds 1 / sqrt(Λ_ii) (Bishop 2006, sec. 10.1.2).
Tolerances: 5 Monte Carlo standard errors (sd / sqrt(n), or sd / sqrt(ESS) for MCMC).
"""

from __future__ import annotations

import warnings

import pytest
import torch

from pyrovae import sites
from pyrovae.errors import ConfigError
from pyrovae.inference.conditioning import CONDITIONERS, condition

S2 = 0.25  # the pPCA fixture's noise variance s^2


def rows(module, n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, module.W.shape[1], generator=g)
    return z @ module.W.T + module.b + 0.5 * torch.randn(n, module.W.shape[0], generator=g)


def exact(module, x_row, m_row):
    """Posterior mean, covariance and precision of z, and the predictive mean and sd of
    the missing entries, for one row."""
    w_o, b_o = module.W[m_row].double(), module.b[m_row].double()
    prec = torch.eye(w_o.shape[1], dtype=torch.float64) + w_o.T @ w_o / S2
    cov = torch.linalg.inv(prec)
    mean = cov @ w_o.T @ (x_row[m_row].double() - b_o) / S2
    w_m, b_m = module.W[~m_row].double(), module.b[~m_row].double()
    x_mean = w_m @ mean + b_m
    x_sd = (w_m @ cov @ w_m.T).diagonal().add(S2).sqrt()
    return mean, cov, prec, x_mean, x_sd


def masks(x):
    mask = torch.ones_like(x, dtype=torch.bool)
    mask[:, 1] = False
    mask[0, 3] = False
    return mask


def test_registered():
    assert {"guide", "svi", "nuts"} <= set(CONDITIONERS.names())


@pytest.mark.parametrize("observed", ["partly", "all"])
def test_svi_reaches_the_mean_field_optimum(ppca_class, observed):
    module = ppca_class(exact=False, widen=1.5)
    x = rows(module, 3)
    mask = masks(x) if observed == "partly" else torch.ones_like(x, dtype=torch.bool)
    n = 4000
    out = condition(module, x, mask, method="svi", draws=n, seed=0, steps=800, lr=0.05)
    z = out.z[sites.LATENT].double()
    assert z.shape == (n, 3, 2)
    for i in range(3):
        mean, _, prec, _, _ = exact(module, x[i], mask[i])
        sd_mf = prec.diagonal().rsqrt()
        se = sd_mf / n**0.5
        assert ((z[:, i].mean(0) - mean).abs() <= 5 * se).all(), (i, z[:, i].mean(0), mean)
        assert ((z[:, i].std(0) - sd_mf).abs() <= 5 * sd_mf / (2 * n) ** 0.5).all()
    assert out.diagnostics["method"] == "svi" and out.diagnostics["steps"] == 800
    # the networks are left as they were
    assert all(p.requires_grad for p in module.parameters())


@pytest.mark.slow
@pytest.mark.parametrize("observed", ["partly", "all"])
def test_nuts_matches_the_exact_posterior_and_predictive(ppca_class, observed):
    module = ppca_class(exact=False, widen=1.5)
    x = rows(module, 2, seed=1)
    mask = masks(x) if observed == "partly" else torch.ones_like(x, dtype=torch.bool)
    out = condition(
        module, x, mask, method="nuts", draws=400, seed=0, warmup=150, chains=2, levels=(0.9,)
    )
    z = out.z[sites.LATENT].double()
    d = out.diagnostics
    assert z.shape == (400, 2, 2)
    assert d["summary"]["max_rhat"] < 1.05 and d["summary"]["divergences"] == 0
    for i in range(2):
        mean, cov, _, x_mean, x_sd = exact(module, x[i], mask[i])
        sd = cov.diagonal().sqrt()
        ess = d["min_ess"][i]
        assert ((z[:, i].mean(0) - mean).abs() <= 5 * sd / ess**0.5).all(), (z[:, i], mean)
        assert ((z[:, i].std(0) - sd).abs() <= 5 * sd / (2 * ess) ** 0.5).all()
        if observed == "partly":
            # E[x_m | x_o] from the decoder's mean over the draws; sd of the x draws
            miss = ~mask[i]
            got = out.mean[i][miss].double()
            w_m = module.W[miss].double()
            se_mean = (w_m @ cov @ w_m.T).diagonal().sqrt() / ess**0.5
            assert ((got - x_mean).abs() <= 5 * se_mean).all(), (got, x_mean)
            xs = out.x[:, i][:, miss].double()
            assert ((xs.std(0) - x_sd).abs() <= 5 * x_sd / (2 * ess) ** 0.5).all()
            lo, hi = out.bands[0.9]
            assert (lo[i][miss] < got).all() and (got < hi[i][miss]).all()
        else:
            assert torch.equal(out.mean[i], x[i])


def test_bad_options(ppca_class):
    module = ppca_class(exact=True)
    x = rows(module, 1)
    mask = torch.ones_like(x, dtype=torch.bool)
    with pytest.raises(ConfigError, match="chains must be an integer >= 1"):
        condition(module, x, mask, method="nuts", draws=10, chains=0)
    with pytest.raises(ConfigError, match="lr must be > 0"):
        condition(module, x, mask, method="svi", draws=10, lr=0)
    with pytest.raises(ConfigError, match="method 'svi' takes the options steps, lr"):
        condition(module, x, mask, method="svi", draws=10, warmup=3)


FAST_OPTIONS = {"guide": {}, "svi": {"steps": 3}, "nuts": {"warmup": 3, "chains": 1}}


@pytest.mark.parametrize("family", ["vae", "hvae"])
@pytest.mark.parametrize("method", CONDITIONERS.names())
def test_every_conditioner_on_every_latent_family(tabular, family, method):
    """Every latent site of the family, with draws (S, B, dim); the observed entries kept."""
    from pyrovae.api import ESTIMATORS

    est = ESTIMATORS.get(family)(latent_dim=2, likelihood="gaussian", epochs=1, hidden=(8,))
    est.fit(tabular[:50])
    x = tabular[:3].clone()
    x[0, 1] = x[2, 4] = float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the guide of a model not trained with masks
        out = est.condition(x, method=method, draws=6, seed=0, **FAST_OPTIONS.get(method, {}))
    want = {sites.LATENT, sites.LATENT_TOP} if family == "hvae" else {sites.LATENT}
    assert set(out.z) == want
    assert all(v.shape[:2] == (6, 3) and torch.isfinite(v).all() for v in out.z.values())
    observed = ~torch.isnan(x)
    torch.testing.assert_close(out.mean[observed], x[observed])
    assert torch.isfinite(out.mean).all()
