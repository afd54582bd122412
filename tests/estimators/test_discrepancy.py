"""The estimators' discrepancy API: ``residuals``, ``discrepancy`` and
``condition(..., noise=)`` (the statistics are checked in
``tests/inference/test_discrepancy.py``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pyrovae import VAE, sites
from pyrovae.api import AE
from pyrovae.errors import ConfigError


@pytest.fixture(scope="module")
def smooth():
    """Rows of smooth curves (random walks) and a small Gaussian VAE fitted to them."""
    g = np.random.default_rng(0)
    x = (g.standard_normal((240, 10)).cumsum(1) / 3).astype(np.float32)
    est = VAE(latent_dim=2, hidden=(16,), likelihood="gaussian", epochs=5, seed=0).fit(x[:200])
    return est, x


def test_residuals_are_the_reconstruction_errors_at_the_posterior_mean(smooth):
    est, x = smooth
    r = est.residuals(x[:7])
    m = est.module_
    with torch.no_grad():
        t = torch.as_tensor(x[:7])
        want = m.decode(m.encode(t).mean).mean - t
    torch.testing.assert_close(r, want)


def test_discrepancy_from_training_and_validation_rows(smooth):
    est, x = smooth
    noise = est.discrepancy(x[:200], X_val=x[200:])
    r = est.residuals(x[:200]).double()
    s = torch.cov(r.T)
    assert noise.size == 10 and noise.nugget > 0 and noise.validation_loglik is not None
    torch.testing.assert_close(noise.covariance, s + noise.nugget * torch.eye(10, dtype=s.dtype))
    fixed = est.discrepancy(x[:200], nugget=1e-3)
    assert fixed.nugget == pytest.approx(1e-3 * float(s.diagonal().mean()))


def test_condition_with_a_discrepancy(smooth):
    est, x = smooth
    noise = est.discrepancy(x[:200], X_val=x[200:], infer_scale=True)
    rows = x[200:202].copy()
    mask = np.ones_like(rows, dtype=bool)
    mask[:, 6:] = False
    out = est.condition(
        rows, mask, method="nuts", draws=40, warmup=40, chains=1, noise=noise, x_true=rows
    )
    assert set(out.z) == {sites.LATENT, sites.DISCREPANCY_SCALE}
    assert torch.equal(out.mean[:, :6], torch.as_tensor(rows[:, :6]))
    assert out.log_lik.shape == (2,) and bool(torch.isfinite(out.log_lik).all())


def test_an_autoencoder_has_no_discrepancy():
    x = np.random.default_rng(1).standard_normal((40, 4)).astype(np.float32)
    ae = AE(latent_dim=2, hidden=(8,), likelihood="gaussian", epochs=1, seed=0).fit(x)
    with pytest.raises(ConfigError, match="latent variables"):
        ae.discrepancy(x)


@pytest.mark.parametrize("family", ["hvae", "cvae"])
def test_every_latent_layer_and_the_conditions_reach_the_discrepancy(family):
    """A hierarchical family conditions both latent layers; a conditional family needs
    the rows' conditions for its residuals and its completions."""
    from pyrovae import CVAE, HVAE

    g = np.random.default_rng(2)
    x = (g.standard_normal((160, 8)).cumsum(1) / 3).astype(np.float32)
    y = g.integers(0, 3, 160)
    kw = {"latent_dim": 2, "hidden": (16,), "likelihood": "gaussian", "epochs": 2, "seed": 0}
    mask = np.ones((1, 8), dtype=bool)
    mask[:, 5:] = False
    if family == "hvae":
        est = HVAE(**kw).fit(x)
        noise = est.discrepancy(x[:120], X_val=x[120:], infer_scale=True)
        out = est.condition(x[:1], mask, method="nuts", draws=10, warmup=10, chains=1, noise=noise)
        assert set(out.z) == {sites.LATENT, sites.LATENT_TOP, sites.DISCREPANCY_SCALE}
    else:
        est = CVAE(**kw).fit(x, y)
        with pytest.raises(ConfigError, match="need the rows' conditions y"):
            est.discrepancy(x)
        noise = est.discrepancy(x[:120], y=y[:120], X_val=x[120:], y_val=y[120:])
        out = est.condition(
            x[:1], mask, method="nuts", draws=10, warmup=10, chains=1, noise=noise, y=y[:1]
        )
        assert set(out.z) == {sites.LATENT}
    assert bool(torch.isfinite(out.mean).all())
