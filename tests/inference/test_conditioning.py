"""Conditioning a trained model on partly observed rows (pyrovae.inference.conditioning):
the conditional log-likelihood estimator against the closed form of the probabilistic
PCA, the guide conditioner against the ordinary posterior, and the Completion."""

from __future__ import annotations

import warnings

import pytest
import torch

from pyrovae import sites
from pyrovae.arviz_compat import group_names
from pyrovae.errors import ConfigError, DataError
from pyrovae.inference.conditioning import (
    CONDITIONERS,
    UNTRAINED_GUIDE,
    condition,
    conditional_log_likelihood,
)


def _ppca_rows(module, n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, module.W.shape[1], generator=g)
    x = z @ module.W.T + module.b + 0.5 * torch.randn(n, module.W.shape[0], generator=g)
    mask = torch.ones_like(x, dtype=torch.bool)
    mask[:, 1] = False
    mask[::2, 3] = False
    return x, mask


def _exact_conditional(module, x, mask):
    """log p(x_miss | x_obs) of pPCA: p(x) = N(b, W W^T + s^2 I), Gaussian conditioning."""
    cov = module.marginal().covariance_matrix.double()
    b = module.b.double()
    out = []
    for row, m in zip(x.double(), mask, strict=True):
        o, u = m, ~m
        k = cov[u][:, o] @ torch.linalg.inv(cov[o][:, o])
        mean = b[u] + k @ (row[o] - b[o])
        c = cov[u][:, u] - k @ cov[o][:, u]
        out.append(torch.distributions.MultivariateNormal(mean, c).log_prob(row[u]))
    return torch.stack(out)


def test_conditional_log_likelihood_matches_the_ppca_closed_form(ppca_class):
    module = ppca_class(exact=False, widen=2.0)
    x, mask = _ppca_rows(module, 6)
    est, se = conditional_log_likelihood(module, x, mask, samples=20000, seed=1)
    exact = _exact_conditional(module, x, mask).float()
    assert (se > 0).all() and (se < 0.2).all()
    # Monte Carlo: 5 standard errors, plus the O(1/K) bias, about se^2 / 2 per row
    assert ((est - exact).abs() <= 5 * se + se**2).all(), (est, exact, se)


def test_conditional_log_likelihood_with_everything_missing_but_one(ppca_class):
    # a proposal wider than the full-data posterior: p(z | x_obs) is nearly the prior
    module = ppca_class(exact=False, widen=3.0)
    x, _ = _ppca_rows(module, 3, seed=2)
    mask = torch.zeros_like(x, dtype=torch.bool)
    mask[:, 0] = True
    est, se = conditional_log_likelihood(module, x, mask, samples=20000, seed=0)
    exact = _exact_conditional(module, x, mask).float()
    assert ((est - exact).abs() <= 5 * se + se**2).all(), (est, exact, se)


def test_all_observed_condition_is_the_ordinary_posterior(ppca_class):
    module = ppca_class(exact=True)
    x, _ = _ppca_rows(module, 4)
    full = torch.ones_like(x, dtype=torch.bool)
    out = condition(module, x, full, draws=50, seed=3)
    with torch.random.fork_rng():
        torch.manual_seed(3)
        want = module.posterior_sample(x, 50)
    torch.testing.assert_close(out.z[sites.LATENT], want[sites.LATENT])
    assert torch.equal(out.x, x.expand(50, *x.shape)) and torch.equal(out.mean, x)


def test_completion_draws_bands_and_arviz(ppca_class):
    module = ppca_class(exact=True)
    x, mask = _ppca_rows(module, 5)
    x_nan = torch.where(mask, x, torch.full_like(x, float("nan")))
    with pytest.warns(UserWarning, match="not trained with observation masks"):
        out = condition(module, x_nan, mask, draws=400, levels=(0.5, 0.9), x_true=x, seed=0)
    assert out.x.shape == (400, *x.shape) and torch.isfinite(out.x).all()
    assert torch.equal(out.x[:, mask], x[mask].expand(400, -1))  # observed entries kept
    lo50, hi50 = out.bands[0.5]
    lo90, hi90 = out.bands[0.9]
    assert (lo90 <= lo50).all() and (hi50 <= hi90).all() and (lo90[~mask] < hi90[~mask]).all()
    # the mean of the draws of a missing entry is the Rao-Blackwellized mean, within MC error
    sd = out.x[:, ~mask].std(0)
    assert ((out.x[:, ~mask].mean(0) - out.mean[~mask]).abs() <= 5 * sd / 20).all()
    assert out.log_lik.shape == (5,) and torch.isfinite(out.log_lik).all()
    assert out.missing_values().shape == (400, int((~mask).sum()))
    data = out.to_arviz()
    assert {"posterior", "posterior_predictive", "observed_data"} <= set(group_names(data))


def test_a_mask_trained_guide_gives_no_warning(ppca_class):
    from pyrovae.models import ModuleSpec, build_module

    module = build_module(
        "vae",
        ModuleSpec(
            data_shape=(5,), latent_dim=2, hidden=(8,), likelihood="gaussian", mask_input=True
        ),
    )
    x = torch.randn(3, 5)
    mask = torch.rand(3, 5) > 0.5
    mask[:, 0] = True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = condition(module, x, mask, draws=10)
    assert out.diagnostics["trained_with_masks"] is True


@pytest.mark.filterwarnings("ignore:this model was not trained with observation masks")
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"mask": torch.ones(4, 4, dtype=torch.bool)}, DataError, r"mask has shape \(4, 4\)"),
        ({"mask": torch.zeros(4, 5, dtype=torch.bool)}, DataError, "no observed entry"),
        ({"method": "nope"}, Exception, "nope"),
        ({"levels": (0.5, 1.0)}, ConfigError, "levels must be numbers in"),
        ({"draws": 1}, ConfigError, "draws >= 2"),
        ({"x_true": torch.zeros(3, 5)}, DataError, "x_true has shape"),
        ({"bogus": 1}, ConfigError, "takes no options"),
    ],
)
def test_bad_input_is_one_line(ppca_class, kwargs, error, match):
    module = ppca_class(exact=True)
    x, mask = _ppca_rows(module, 4)
    args = {"mask": mask, **kwargs}
    with pytest.raises(error, match=match) as info:
        condition(module, x, args.pop("mask"), **args)
    assert "\n" not in str(info.value)


def test_registry_lists_the_guide():
    assert "guide" in CONDITIONERS.names()
    assert "trained" in UNTRAINED_GUIDE


@pytest.mark.filterwarnings("ignore:this model was not trained with observation masks")
def test_conformal_bands_cover_on_average_under_a_misspecified_noise(ppca_class):
    """The recipe of docs/conditioning.md: rows drawn with three times the model's noise,
    so its 90 % bands under-cover; the standardized errors of 300 calibration rows give
    q (each row one case), and mean ± q·sd covers 90 % of 300 fresh rows' missing
    entries on average (6 points: the fresh rows' and the calibration's sampling)."""
    from pyrovae.inference import conformal_quantile

    module = ppca_class(exact=True)
    g = torch.Generator().manual_seed(5)

    def rows(n):
        z = torch.randn(n, module.W.shape[1], generator=g)
        x = z @ module.W.T + module.b + 1.5 * torch.randn(n, module.W.shape[0], generator=g)
        mask = torch.rand(n, x.shape[1], generator=g) > 0.4
        mask[:, 0] = True
        out = condition(module, x, mask, draws=200, seed=int(torch.randint(99, (1,), generator=g)))
        score = (x - out.mean).abs() / out.x.std(0)
        row = torch.arange(n)[:, None].expand_as(x)
        return score[~mask], row[~mask]

    score, row = rows(300)
    q = conformal_quantile(score.numpy(), 0.9, groups=row.numpy())
    fresh, fresh_row = rows(300)

    def coverage(z):
        inside = (fresh <= z).double()
        per_row = torch.zeros(300, dtype=torch.float64).index_add_(0, fresh_row, inside)
        count = torch.bincount(fresh_row, minlength=300).double()
        return float((per_row[count > 0] / count[count > 0]).mean())

    assert q > 1.645 * 2  # the model's bands are several times too narrow (q ≈ 5.6)
    assert coverage(1.6448536) < 0.7  # 0.42
    assert abs(coverage(q) - 0.9) < 0.06
