"""The estimators with a Bayesian decoder: fitting, the predictive log-likelihood,
persistence of the weight posterior, decode/sample with drawn weights, the epistemic
split, and the refusals."""

from __future__ import annotations

import math

import numpy as np
import pyro
import pytest
import torch

from pyrovae import HVAE, VAE, estimator_params, load, resume
from pyrovae.analysis.epistemic import (
    epistemic_scores,
    prior_split,
    reconstruction_split,
    variance_split,
)
from pyrovae.config import resolve
from pyrovae.errors import ConfigError
from pyrovae.inference.loglik import log_likelihood
from pyrovae.models.bayesian import WEIGHT_POSTERIORS
from pyrovae.objectives import OBJECTIVES

SMALL = {"hidden": [16], "latent_dim": 3, "epochs": 2, "batch_size": 64, "seed": 0}


@pytest.fixture(scope="module", params=WEIGHT_POSTERIORS.names())
def fitted(digits, request):
    """A fitted Bayesian-decoder VAE, once per registered weight posterior."""
    est = VAE(bayesian_decoder=True, weight_posterior=request.param, **SMALL)
    return est.fit(digits.train[:200], X_val=digits.val[:50])


@pytest.mark.parametrize("cls", [VAE, HVAE])
@pytest.mark.parametrize("layers", [None, "all", "last"])
def test_fit_and_evaluate_report_the_weight_kl(cls, layers, digits):
    est = cls(bayesian_decoder=True, bayesian_layers=layers, **SMALL)
    est.fit(digits.train[:100])
    out = est.evaluate(digits.test[:40])
    weights = est.module_.decoder_weights
    assert out["weight_kl"] == pytest.approx(float(weights.kl().detach()), rel=1e-6)
    assert out["weight_kl_per_point"] == pytest.approx(out["weight_kl"] / 40)
    assert (layers == "last") == (len(weights.names) == 2)


def test_predictive_log_likelihood_is_the_log_mean_over_weight_draws(fitted, digits):
    """log E_q(θ)[p(x|θ)] with S draws: the log-mean-exp over θ_s of the K-sample
    estimates at fixed θ_s, from the same random draws."""
    module = fitted.module_
    x = fitted.as_input(digits.test[:10])
    pyro.set_rng_seed(3)
    got = log_likelihood(module, x, samples=7, weight_draws=4)
    pyro.set_rng_seed(3)
    per = []
    for theta in [module.decoder_weights.draw() for _ in range(1)]:
        with module.decoder_weights.fixed(theta):
            per.append(log_likelihood(module, x, samples=7))
    for _ in range(3):
        theta = module.decoder_weights.draw()
        with module.decoder_weights.fixed(theta):
            per.append(log_likelihood(module, x, samples=7))
    want = torch.logsumexp(torch.stack(per), 0) - math.log(4)
    assert torch.allclose(got, want, atol=1e-5)


def test_fixed_weights_give_the_point_decoders_log_likelihood(fitted, digits):
    """At fixed θ the direct fast path runs and equals the traced path."""
    module = fitted.module_
    x = fitted.as_input(digits.test[:10])
    with module.decoder_weights.fixed():
        pyro.set_rng_seed(5)
        direct = log_likelihood(module, x, samples=20)
        pyro.set_rng_seed(5)
        traced = log_likelihood(module, x, samples=20, direct=False)
    assert torch.allclose(direct, traced, atol=1e-4)
    with pytest.raises(NotImplementedError, match="decoder weights are random"):
        module.direct_log_weights(x)


def test_save_and_load_round_trip_the_weight_posterior(fitted, tmp_path):
    fitted.save(tmp_path / "model.pt")
    back = load(tmp_path / "model.pt")
    a, b = fitted.module_.state_dict(), back.module_.state_dict()
    raw = [k for k in a if k.startswith("decoder_weights.raw_scale.")]
    assert raw and all(torch.equal(a[k], b[k]) for k in a)
    assert back.bayesian_decoder and back.module_.decoder_weights.names == (
        fitted.module_.decoder_weights.names
    )
    assert type(back.module_.decoder_weights) is type(fitted.module_.decoder_weights)
    with torch.no_grad():
        assert float(back.module_.decoder_weights.kl()) == float(
            fitted.module_.decoder_weights.kl()
        )


@pytest.mark.parametrize("posterior", WEIGHT_POSTERIORS.names())
def test_resume_continues_the_weight_posterior_as_an_unbroken_run(digits, tmp_path, posterior):
    x, xv = digits.train[:100], digits.val[:30]
    params = {**SMALL, "epochs": 3, "weight_posterior": posterior}
    straight = VAE(bayesian_decoder=True, **params).fit(x, X_val=xv, run_dir=tmp_path / "a")
    VAE(bayesian_decoder=True, **{**params, "epochs": 2}).fit(x, X_val=xv, run_dir=tmp_path / "b")
    resumed = resume(tmp_path / "b", x, xv, epochs=3)
    a, b = straight.module_.state_dict(), resumed.module_.state_dict()
    assert set(a) == set(b)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k


def test_decode_and_sample_with_drawn_weights(fitted):
    pyro.set_rng_seed(0)
    z = torch.randn(4, 3)
    mean = fitted.decode(z).mean
    drawn = fitted.decode(z, weights="sample").mean
    assert drawn.shape == mean.shape
    dw = fitted.module_.decoder_weights
    pyro.set_rng_seed(1)
    thetas = [dw.draw() for _ in range(4)]
    pyro.set_rng_seed(1)
    drawn = fitted.decode(z, weights="sample").mean
    for i, theta in enumerate(thetas):
        with dw.fixed(theta):
            assert torch.allclose(drawn[i], fitted.module_.decode(z[i : i + 1]).mean[0])
    assert fitted.sample(5, weights="sample").shape == (5, 1, 8, 8)
    with pytest.raises(ConfigError, match="weights must be one of mean, sample"):
        fitted.sample(5, weights="median")


def test_variance_split_is_the_law_of_total_variance(fitted):
    """For a Bernoulli likelihood the split is exact on the draws: with the epistemic
    part's divisor S - 1 turned back into S, epistemic + aleatoric = Var of the
    mixture of the S Bernoullis = m (1 - m), m the predictive mean."""
    module = fitted.module_
    dw = module.decoder_weights
    saved = {k: v.clone() for k, v in dw.raw_scale.items()}
    with torch.no_grad():
        for p in dw.raw_scale.values():
            p.fill_(-0.1)  # σ = softplus(-1) ~ 0.3: a visible epistemic part
    try:
        pyro.set_rng_seed(0)
        s = 50
        split = variance_split(module, torch.randn(7, 3), draws=s)
        m = split["mean"]
        total = split["epistemic"] * (s - 1) / s + split["aleatoric"]
        assert torch.allclose(total, m * (1 - m), atol=1e-5)
        assert float(split["epistemic"].mean()) > 1e-3
    finally:
        with torch.no_grad():
            for k, v in saved.items():
                dw.raw_scale[k].copy_(v)


def test_split_and_score_shapes_and_refusals(fitted, digits):
    module = fitted.module_
    x = fitted.as_input(digits.test[:6])
    r = reconstruction_split(module, x, draws=3)
    p = prior_split(module, 5, draws=3)
    assert r["epistemic"].shape == x.shape and p["aleatoric"].shape == (5, 1, 8, 8)
    assert (r["epistemic"] >= 0).all() and (r["aleatoric"] >= 0).all()
    assert epistemic_scores(module, x, draws=3).shape == (6,)
    with pytest.raises(ConfigError, match="draws >= 2"):
        variance_split(module, torch.zeros(1, 3), draws=1)
    point = VAE(**SMALL).fit(digits.train[:50])
    with pytest.raises(ConfigError, match="needs a Bayesian decoder"):
        reconstruction_split(point.module_, x)


def test_epistemic_variance_shrinks_as_the_training_set_grows():
    """Linear-Gaussian decoder x = W z + b + noise: the mean-field posterior variance of
    each weight is 1 / (1/s^2 + sum_n z_n^2 / sigma^2), about sigma^2 / N, so the
    epistemic variance of reconstructions falls about as 1 / N. From 40 to 1,280 rows
    (32x) it must fall by more than 4x (the closed form's 32x, with room for an
    optimizer that has not reached the optimum)."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(2, 4, generator=g)
    data = torch.randn(1280, 2, generator=g) @ w + 0.3 * torch.randn(1280, 4, generator=g)
    common = dict(
        net="linear",
        latent_dim=2,
        likelihood="gaussian",
        likelihood_options={"scale": 0.3},
        bayesian_decoder=True,
        learning_rate=0.02,
        patience=0,
        seed=0,
    )
    probe = data[:50]
    epi = {}
    for n, epochs, batch in ((40, 600, 40), (1280, 40, 64)):
        est = VAE(epochs=epochs, batch_size=batch, **common).fit(data[:n])
        pyro.set_rng_seed(0)
        epi[n] = float(reconstruction_split(est.module_, probe, draws=200)["epistemic"].mean())
    assert epi[1280] < epi[40] / 4


def test_refusals():
    with pytest.raises(ConfigError, match="bayesian_layers needs bayesian_decoder"):
        VAE(bayesian_layers="last").check_params()
    with pytest.raises(ConfigError, match="decoder_prior_scale must be > 0"):
        VAE(bayesian_decoder=True, decoder_prior_scale=0).check_params()
    for name in OBJECTIVES.names():
        est = VAE(bayesian_decoder=True, objective=name)
        if OBJECTIVES.get(name).global_sites:
            est.check_params()
        else:
            with pytest.raises(ConfigError, match="cannot score the Bayesian decoder"):
                est.check_params()
    cfg = resolve({"model": "ae", "bayesian_decoder": True})
    with pytest.raises(ConfigError, match="needs a model with latent variables"):
        estimator_params("ae", cfg)
    assert "bayesian_decoder" not in estimator_params("ae", resolve({"model": "ae"}))


def test_arviz_export_draws_the_weights_with_each_posterior_draw(fitted, digits):
    from pyrovae.analysis import posterior_groups

    module = fitted.module_
    x = fitted.as_input(digits.test[:3])
    pyro.set_rng_seed(0)
    groups = posterior_groups(module, x, draws=4)
    pyro.set_rng_seed(0)
    z = module.posterior_sample(x, 4)["z"]
    thetas = list(module.decoder_weights.draws(4))
    for s, theta in enumerate(thetas):
        with module.decoder_weights.fixed(theta):
            want = module.decode(z[s]).log_prob(x)
        assert torch.allclose(torch.as_tensor(groups["log_likelihood"]["x"][0, s]), want)


def test_refine_runs_nuts_on_z_at_the_posterior_mean_weights(fitted, digits):
    out = fitted.refine(digits.test[:1], num_samples=20, warmup=20, chains=2)
    assert out["draws"].shape == (2, 20, 1, 3)
    assert np.isfinite(out["khat"]).all()


def test_model_selection_counts_the_weight_means_as_parameters(fitted, digits):
    from pyrovae.analysis.selection import generative_parameters

    point = VAE(**SMALL).fit(digits.train[:50])
    weights = fitted.module_.decoder_weights
    # the mean decoder's own parameters: the posterior's parameters other than its
    # scales (for a rank-1 posterior the factor means; none for mean-field, whose means
    # are the decoder's parameters)
    extra = sum(
        p.numel() for name, p in weights.named_parameters() if not name.startswith("raw_scale")
    )
    assert generative_parameters(fitted.module_) == generative_parameters(point.module_) + extra


def test_conditioning_runs_at_the_posterior_mean_weights(fitted, digits):
    """Conditioning on partial rows decodes with the posterior mean of the weights: its
    conditional log-likelihood equals that of the mean decoder fixed by hand."""
    from pyrovae.inference.conditioning import conditional_log_likelihood

    module = fitted.module_
    x = fitted.as_input(digits.test[:4])
    mask = torch.ones_like(x, dtype=torch.bool)
    mask[..., :4, :] = False
    got, _ = conditional_log_likelihood(module, x, mask, samples=20, seed=1)
    with module.decoder_weights.fixed():
        want, _ = conditional_log_likelihood(module, x, mask, samples=20, seed=1)
    assert torch.allclose(got, want)
    completion = fitted.condition(x, mask, draws=5, x_true=x)
    assert completion.log_lik.shape == (4,)


def test_m2_refuses_a_bayesian_decoder(digits):
    from pyrovae.api import M2

    y = digits.y_train[:60].clone()
    y[20:] = -1
    with pytest.raises(ConfigError, match="bayesian_decoder is available for the vae and hvae"):
        M2(bayesian_decoder=True, epochs=1, hidden=(8,), latent_dim=2).fit(digits.train[:60], y)
