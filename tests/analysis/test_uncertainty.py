"""Reconstruction uncertainty and the out-of-distribution AUROC on probabilistic PCA,
where both have closed forms (see the pPCA fixture in tests/conftest.py).

With z ~ q(z|x) = N(m(x), S) and E[x|z] = W z + b, the draws of E[x|z] are Normal with
mean W m(x) + b and per-feature sd sqrt(diag(W S W^T)). With the exact posterior as
proposal every importance weight equals p(x), so the OOD scores -log p(x) are exact and
the AUROC is the Mann-Whitney statistic of the closed-form scores.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pyrovae.analysis.uncertainty import ood_scores, reconstruction_uncertainty


def _mann_whitney(s_in, s_out) -> float:
    """P(score_out > score_in) + P(tie) / 2 over all pairs, by counting."""
    s_in, s_out = np.asarray(s_in)[:, None], np.asarray(s_out)[None, :]
    return float(((s_out > s_in) + 0.5 * (s_out == s_in)).mean())


def test_reconstruction_uncertainty_matches_the_closed_form(ppca_class):
    """4000 draws: the mean within four standard errors sd / sqrt(4000) of W m(x) + b,
    the sd within four standard errors sd / sqrt(2 * 3999) of sqrt(diag(W S W^T))."""
    m = ppca_class(exact=True)
    x = m.marginal().sample((3,))
    m.train()
    mean, sd = reconstruction_uncertainty(m, x, draws=4000)
    assert m.training  # the mode is restored
    true_mean = m.encode(x).mean @ m.W.T + m.b
    true_sd = (m.W @ m.cov_post @ m.W.T).diagonal().sqrt().expand_as(x)
    assert mean.shape == sd.shape == x.shape
    assert ((mean - true_mean).abs() < 4 * true_sd / math.sqrt(4000)).all()
    assert ((sd - true_sd).abs() < 4 * true_sd / math.sqrt(2 * 3999)).all()


def test_ood_auroc_is_the_mann_whitney_statistic_of_the_exact_scores(ppca_class):
    m = ppca_class(exact=True)
    x_in = m.marginal().sample((30,))
    x_out = m.b + 2.0 * (m.marginal().sample((40,)) - m.b)  # twice as spread: overlaps
    out = ood_scores(m, x_in, x_out, samples=3)
    exact_in = -m.marginal().log_prob(x_in).numpy()
    exact_out = -m.marginal().log_prob(x_out).numpy()
    np.testing.assert_allclose(out["score_in"], exact_in, rtol=0, atol=1e-4)
    np.testing.assert_allclose(out["score_out"], exact_out, rtol=0, atol=1e-4)
    expected = _mann_whitney(exact_in, exact_out)
    assert 0.6 < expected < 0.95  # neither chance nor perfect: a real test of the count
    assert out["auroc"] == pytest.approx(expected, abs=1e-12)


def test_ood_auroc_of_the_same_data_and_of_far_away_data(ppca_class):
    """The same points on both sides: the n(n - 1) off-diagonal pairs cancel in pairs and
    only the n pairs of a point with itself (scores equal up to float rounding) can
    move the AUROC from 1/2, by at most 1 / (2n). Points far from the data: 1."""
    m = ppca_class(exact=True)
    x = m.marginal().sample((25,))
    same = ood_scores(m, x, x.clone(), samples=3)
    assert abs(same["auroc"] - 0.5) <= 1 / (2 * 25)
    far = ood_scores(m, x, x + 50.0, samples=3)
    assert far["auroc"] == 1.0
    # the score is -log p(x): swapping the roles gives the complement
    assert ood_scores(m, x + 50.0, x, samples=3)["auroc"] == 0.0


def test_reconstruction_uncertainty_is_zero_for_a_point_posterior(ppca_class):
    """A guide with (nearly) no spread, posterior sds of 1e-4 (ten times the guide
    head's floor): every draw decodes to nearly the same mean, and the per-feature sd is
    the closed form sqrt(sum_l W_dl^2 s_l^2), at most 1e-4 * |W_d| (here < 5e-4)."""
    widen = 1e-4 / float(ppca_class(exact=False).cov_post.diagonal().sqrt().max())
    m = ppca_class(exact=False, widen=widen)
    x = m.marginal().sample((4,))
    mean, sd = reconstruction_uncertainty(m, x, draws=50)
    bound = 1e-4 * float(m.W.norm(dim=1).max())
    torch.testing.assert_close(mean, m.encode(x).mean @ m.W.T + m.b, rtol=0, atol=4 * bound)
    assert 0 < float(sd.max()) < 2 * bound
