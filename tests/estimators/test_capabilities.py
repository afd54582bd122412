"""What differs between model families is a method of the family's estimator."""

from __future__ import annotations

import math

import pyro
import pytest
import torch

from pyrovae.estimators import AE, DAE, HVAE, VAE
from pyrovae.objectives import make_schedule

SMALL = dict(latent_dim=2, hidden=(16,), epochs=2, batch_size=64, seed=0, likelihood="bernoulli")


@pytest.fixture(scope="module")
def data(digits):
    x = (digits.train[:200] > 0.5).float()
    return x[:150], x[150:]


@pytest.fixture(scope="module", params=[VAE, HVAE, AE, DAE], ids=lambda c: c.family)
def fitted(request, data):
    return request.param(**SMALL).fit(data[0])


def test_kl_weight_is_the_final_beta_or_none(data):
    assert VAE(beta=0.25, **SMALL).kl_weight == 0.25
    sched = make_schedule(4.0, "linear", 3.0)
    assert VAE(beta=sched, **SMALL).kl_weight == 4.0
    assert HVAE(beta=2.0, **SMALL).kl_weight == 2.0
    assert AE(**SMALL).kl_weight is None and DAE(**SMALL).kl_weight is None


def test_novelty_scores_are_the_familys_score(fitted, data):
    x = data[1]
    pyro.set_rng_seed(3)
    scores = fitted.novelty_scores(x, samples=20)
    assert scores.shape == (x.shape[0],)
    if isinstance(fitted, VAE):
        pyro.set_rng_seed(3)
        torch.testing.assert_close(scores, -fitted.log_likelihood(x, samples=20))
    else:
        by_hand = (fitted.reconstruct(x) - x).pow(2).flatten(1).sum(1)
        torch.testing.assert_close(scores, by_hand)


def test_likelihood_metrics_reuse_the_novelty_scores(fitted, data):
    x = data[1]
    novelty = fitted.novelty_scores(x, samples=20)
    out = fitted.likelihood_metrics(x, samples=20, particles=2, novelty=novelty)
    if isinstance(fitted, VAE):
        ll = -novelty
        assert out["log_likelihood"] == pytest.approx(float(ll.mean()))
        assert out["log_likelihood_se"] == pytest.approx(float(ll.std() / math.sqrt(len(ll))))
        assert (
            out["rate"] > 0
            and out["elbo"] <= out["log_likelihood"] + 5 * out["log_likelihood_se"] + 1.0
        )
    else:
        assert out == dict.fromkeys(("rate", "elbo", "log_likelihood", "log_likelihood_se"))


def test_score_is_the_elbo_or_the_reconstruction_term(fitted, data):
    x = data[1]
    pyro.set_rng_seed(5)
    score = fitted.score(x)
    pyro.set_rng_seed(5)
    ev = fitted.evaluate(x)
    if isinstance(fitted, VAE):
        assert score == ev["elbo"] and math.isfinite(score)
    else:
        assert score == ev["recon"] and math.isnan(ev["elbo"])
