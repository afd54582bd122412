"""Checks of the computations behind the tutorial's figures (examples/tutorial_figures.py).

The script itself is run end to end by tests/test_examples.py; here its pieces are
checked against closed forms and against independent estimators.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pyro.distributions as dist
import pytest
import torch

from pyrovae.models import ModuleSpec, build_module

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "tutorial_figures.py"


@pytest.fixture(scope="module")
def tf():
    spec = importlib.util.spec_from_file_location("tutorial_figures", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tiny_vae():
    """An untrained VAE module with a 2-D code on 8x8 images (seeded)."""
    torch.manual_seed(0)
    spec = ModuleSpec(data_shape=(1, 8, 8), latent_dim=2, hidden=(16,), likelihood="bernoulli")
    return build_module("vae", spec).eval()


def test_output_dir_rule(tf, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    quick = {tf.EPOCHS_ENV: "2"}
    assert tf.output_dir("figs", quick) == Path("figs")
    assert tf.output_dir(None, {**quick, tf.OUTPUT_ENV: "elsewhere"}) == Path("elsewhere")
    assert tf.output_dir(None, quick) == tmp_path / tf.QUICK_OUTPUT
    default = tf.output_dir(None, {}, script=SCRIPT)
    assert default == SCRIPT.resolve().parents[1] / "docs" / "figures" / "tutorial"


def test_epoch_budget(tf):
    assert tf.epoch_budget(None, {}) == tf.DEFAULT_EPOCHS
    assert tf.epoch_budget(None, {tf.EPOCHS_ENV: "2"}) == 2
    assert tf.epoch_budget(7, {tf.EPOCHS_ENV: "2"}) == 7


def test_gradient_estimates_are_the_textbook_formulas(tf):
    mu, sigma, c = 0.5, 0.8, 2.0
    est = tf.gradient_estimates(mu, sigma, c, n=1000, seed=3)
    eps = est["eps"]
    z = mu + sigma * eps
    f = (z - c) ** 2
    torch.testing.assert_close(est["reparam_mu"], 2 * (z - c))
    torch.testing.assert_close(est["reparam_sigma"], 2 * (z - c) * eps)
    torch.testing.assert_close(est["score_mu"], f * (z - mu) / sigma**2)
    torch.testing.assert_close(est["score_sigma"], f * ((z - mu) ** 2 / sigma**3 - 1 / sigma))


def test_both_estimators_are_unbiased_and_score_is_noisier(tf):
    mu, sigma, c, n = 0.5, 0.8, 2.0, 200_000
    est = tf.gradient_estimates(mu, sigma, c, n=n, seed=1)
    exact = tf.exact_gradient(mu, sigma, c)
    assert exact == (2 * (mu - c), 2 * sigma)
    for j, p in enumerate(("mu", "sigma")):
        for kind in ("reparam", "score"):
            v = est[f"{kind}_{p}"]
            se = float(v.std()) / math.sqrt(n)
            assert abs(float(v.mean()) - exact[j]) < 4 * se, (kind, p)
        assert est[f"score_{p}"].var() > 5 * est[f"reparam_{p}"].var()


def test_guide_gradients_reach_mu_and_sigma_not_eps(tf, tiny_vae, digits):
    g = tf.guide_gradients(tiny_vae, digits.test[:16])
    assert g["eps_is_leaf"] and not g["eps_requires_grad"] and g["eps_grad"] is None
    assert g["loc_grad_norm"] > 0 and g["scale_grad_norm"] > 0 and g["encoder_grad_norm"] > 0
    assert g["rsample_matches"]
    assert not g["sample_requires_grad"] and g["sample_encoder_grad"] is None
    assert g["sample_decoder_grad_norm"] > 0


def test_grid_integrates_the_prior_to_one(tf):
    z, area = tf.latent_grid(6.0, 301)
    mass = dist.Normal(torch.zeros(2), 1.0).to_event(1).log_prob(z).exp().sum() * area
    assert abs(float(mass) - 1.0) < 1e-3


def test_quadrature_is_exact_for_a_linear_gaussian_model(tf):
    # linear decoder + N(0, I) prior + Gaussian likelihood of scale s: p(x) = N(b, W W^T + s^2 I)
    torch.manual_seed(0)
    spec = ModuleSpec(
        data_shape=(6,),
        latent_dim=2,
        net="linear",
        likelihood="gaussian",
        likelihood_options={"scale": 0.3},
    )
    module = build_module("vae", spec).eval()
    w, b = module.decoder.linear.weight.detach(), module.decoder.linear.bias.detach()
    marginal = dist.MultivariateNormal(b, w @ w.T + 0.09 * torch.eye(6))
    x = marginal.sample((10,))
    quad = tf.grid_log_marginal(module, x, lim=6.0, n=301)
    torch.testing.assert_close(quad, marginal.log_prob(x), atol=1e-3, rtol=0)


def test_aggregate_density_and_holes(tf):
    g = torch.Generator().manual_seed(0)
    loc = 3.0 + 0.1 * torch.randn(400, 2, generator=g)
    scale = torch.full((400, 2), 0.2)
    z = torch.randn(5, 2, generator=g)
    one = tf.aggregate_log_density(loc[:1], scale[:1], z)
    torch.testing.assert_close(one, dist.Normal(loc[0], scale[0]).to_event(1).log_prob(z))
    # draws from the aggregate posterior itself: about 5% below its 5% quantile
    idx = torch.randint(400, (3000,), generator=g)
    own = loc[idx] + scale[idx] * torch.randn(3000, 2, generator=g)
    frac, mask = tf.hole_fraction(loc, scale, own, level=0.05, seed=1)
    assert 0.03 < frac < 0.07 and mask.shape == (3000,)
    # a N(0, I) prior far from the codes: almost every draw is in a hole
    frac, _ = tf.hole_fraction(loc, scale, torch.randn(1000, 2, generator=g), seed=1)
    assert frac > 0.95


def test_cells_are_in_reading_order(tf):
    import numpy as np

    lo, hi, n = np.array([0.0, 0.0]), np.array([3.0, 3.0]), 3
    centres = tf.cell_centres(lo, hi, n)
    torch.testing.assert_close(centres[0], torch.tensor([0.5, 2.5]))  # top left
    torch.testing.assert_close(centres[-1], torch.tensor([2.5, 0.5]))  # bottom right
    codes = np.array([[0.2, 2.9], [2.9, 0.1], [2.8, 0.3]])  # top left, bottom right twice
    empty = tf.empty_cells(codes, lo, hi, n)
    assert empty.tolist() == [False] + [True] * 7 + [False]


def test_sharpness_and_nearest_distance(tf):
    flat = torch.full((2, 1, 4, 4), 0.5)
    checker = (torch.arange(4)[:, None] + torch.arange(4)[None, :]) % 2
    checker = checker.float().expand(2, 1, 4, 4)
    assert tf.sharpness(flat) == 0.0
    assert tf.sharpness(checker) == pytest.approx(1.0)
    d = tf.nearest_mse(torch.cat([flat[:1], checker[:1]]), torch.cat([checker[:1], flat[:1]]))
    torch.testing.assert_close(d, torch.zeros(2), atol=1e-6, rtol=0)
    assert float(tf.nearest_mse(flat[:1], checker[:1])[0]) == pytest.approx(0.25)
