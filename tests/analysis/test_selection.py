"""Model selection: parameter counts, criteria formulas, choice of the best, the plot."""

from __future__ import annotations

import math

import pytest

from pyrovae.analysis.selection import (
    best,
    generative_parameters,
    latent_dim_curve,
    plot_selection,
    score_model,
)
from pyrovae.api import VAE
from pyrovae.models import ModuleSpec, build_module


def test_generative_parameters_exclude_the_encoder():
    m = build_module("vae", ModuleSpec(data_shape=(6,), latent_dim=2, hidden=(5,), prior="learned"))
    decoder = (2 * 5 + 5) + (5 * 6 + 6)
    prior = 2 + 2
    assert generative_parameters(m) == decoder + prior


def test_criteria_formulas(small_digits):
    """AIC and BIC by hand: k counted from the architecture, log L summed from the same
    importance-sampled log p(x) values (the draws replayed), N = 300."""
    import pyro

    from pyrovae.analysis import log_likelihood

    x, xv = small_digits
    est = VAE(epochs=1, hidden=(16,), latent_dim=2).fit(x, X_val=xv)
    pyro.set_rng_seed(8)
    s = score_model(est, x, xv, samples=20)
    pyro.set_rng_seed(8)  # the training data's log p(x) is computed first, then held-out
    total = float(log_likelihood(est.module_, x, samples=20).sum())
    held_out = log_likelihood(est.module_, xv, samples=20)
    # decoder 2 -> 16 -> 64 Bernoulli logits; the standard normal prior has no parameters
    k = (2 * 16 + 16) + (16 * 64 + 64)
    assert s["parameters"] == k == 1136
    assert s["train_log_likelihood"] == pytest.approx(total / 300, rel=1e-6)
    assert s["aic"] == pytest.approx(-2 * total + 2 * 1136, rel=1e-6)
    assert s["bic"] == pytest.approx(-2 * total + 1136 * math.log(300), rel=1e-6)
    assert s["val_log_likelihood"] == pytest.approx(float(held_out.mean()), rel=1e-6)
    assert s["val_log_likelihood_se"] == pytest.approx(float(held_out.std() / 10), rel=1e-6)


def test_best_picks_each_criterion():
    rows = [
        {"label": "a", "val_log_likelihood": -3.0, "aic": 10.0, "bic": 30.0},
        {"label": "b", "val_log_likelihood": -2.0, "aic": 12.0, "bic": 20.0},
        {"label": "c", "val_log_likelihood": -2.5, "aic": 9.0, "bic": 25.0},
    ]
    assert best(rows) == {"val_log_likelihood": "b", "aic": "c", "bic": "b"}


def test_latent_dim_curve_and_plot(small_digits, tmp_path):
    x, xv = small_digits
    res = latent_dim_curve(VAE(epochs=2, hidden=(16,)), [1, 3], x, xv, samples=20)
    assert [r["label"] for r in res["rows"]] == [1, 3]
    assert res["rows"][1]["parameters"] > res["rows"][0]["parameters"]
    assert set(res["best"]) == {"val_log_likelihood", "aic", "bic"}
    plot_selection(res, tmp_path / "selection.png")
    assert (tmp_path / "selection.png").stat().st_size > 1000
