"""Model selection: parameter counts, criteria formulas, choice of the best, the plot."""

from __future__ import annotations

import math

import pytest
import torch
from pyro import poutine

from pyrovae import sites
from pyrovae.analysis.selection import (
    best,
    generative_parameter_tensors,
    generative_parameters,
    latent_dim_curve,
    plot_selection,
    score_model,
)
from pyrovae.api import VAE
from pyrovae.data import Batch
from pyrovae.models import ModuleSpec, build_module
from pyrovae.priors import PRIORS


def test_generative_parameters_exclude_the_encoder():
    m = build_module("vae", ModuleSpec(data_shape=(6,), latent_dim=2, hidden=(5,), prior="learned"))
    decoder = (2 * 5 + 5) + (5 * 6 + 6)
    prior = 2 + 2
    assert generative_parameters(m) == decoder + prior


#: Hand counts for data of 6 features, latent_dim 2, one hidden layer of 5 units.
DECODER = (2 * 5 + 5) + (5 * 6 + 6)  # Linear(2, 5), Linear(5, 6 x 1 channel)
ENCODER = 6 * 5 + 5  # Linear(6, 5)
GUIDE_HEAD = 5 * 4 + 4  # Linear(5, 2 x latent_dim): loc and scale


@pytest.mark.parametrize(
    "options, expected, parts",
    [
        ({}, DECODER, {"decoder"}),
        ({"likelihood": "gaussian-learned"}, DECODER + 1, {"decoder", "likelihood"}),
        # p(z) = (1/3) sum_k q(z | u_k): the pseudo-inputs, the encoder and the guide head
        (
            {"prior": "vamp", "prior_options": {"components": 3}},
            DECODER + ENCODER + GUIDE_HEAD + 3 * 6,
            {"decoder", "encoder", "guide_head", "prior"},
        ),
    ],
)
def test_parameter_count_follows_what_log_p_x_z_depends_on(options, expected, parts):
    m = build_module("vae", ModuleSpec(data_shape=(6,), latent_dim=2, hidden=(5,), **options))
    assert generative_parameters(m) == expected
    counted = {id(p) for p in generative_parameter_tensors(m)}
    owners = {name.split(".")[0] for name, p in m.named_parameters() if id(p) in counted}
    assert owners == parts


def _log_joint(m, values, data):
    # fresh copies: flows cache their last input by identity
    values = {k: v.clone() for k, v in values.items()}
    conditioned = poutine.condition(m.model, data=values)
    observed = data.replace(x=values[sites.OBS])
    return poutine.trace(conditioned).get_trace(observed).log_prob_sum()


@pytest.mark.parametrize(
    "family, options",
    [
        ("cvae" if PRIORS.get(name).conditional else "vae", {"prior": name})
        for name in PRIORS.names()
    ]
    + [
        ("hvae", {"prior": p, "model_options": {"top_dim": 2, "top_from_x": True}})
        for p in ("normal", "vamp")
    ],
)
def test_counted_parameters_are_those_whose_change_changes_log_p_x_z(family, options):
    """An independent check over every registered prior: perturb each parameter tensor
    alone; log p(x, z) at fixed simulated x and z changes exactly for the counted ones
    (given conditions, in the cvae that a conditional prior needs)."""
    torch.manual_seed(0)
    m = build_module(family, ModuleSpec(data_shape=(6,), latent_dim=2, hidden=(5,), **options))
    m.eval()
    with torch.no_grad():
        for p in m.parameters():  # away from initial values of 0 (a flow's last layer)
            p.add_(0.1 * torch.randn_like(p))
        y = m.targets(torch.randn(3, m.condition_dim)) if m.condition_dim else None
        data = Batch(torch.zeros(3, 6), y)
        sim = poutine.trace(poutine.uncondition(m.model)).get_trace(data)
        values = {n: s["value"] for n, s in sim.nodes.items() if s["type"] == "sample"}
        base = _log_joint(m, values, data)
        changed = set()
        for name, p in m.named_parameters():
            keep = p.clone()
            p.add_(0.1 * torch.randn_like(p))
            if not torch.isclose(_log_joint(m, values, data), base, rtol=0, atol=1e-6):
                changed.add(name)
            p.copy_(keep)
    counted = {id(p) for p in generative_parameter_tensors(m, data)}
    assert {n for n, p in m.named_parameters() if id(p) in counted} == changed


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
