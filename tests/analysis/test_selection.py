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
    x, xv = small_digits
    est = VAE(epochs=1, hidden=(16,), latent_dim=2).fit(x, X_val=xv)
    s = score_model(est, x, xv, samples=20)
    n, k = x.shape[0], s["parameters"]
    total = s["train_log_likelihood"] * n
    assert s["aic"] == pytest.approx(-2 * total + 2 * k, rel=1e-5)
    assert s["bic"] == pytest.approx(-2 * total + k * math.log(n), rel=1e-5)


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
