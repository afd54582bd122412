"""The Bernoulli likelihood's closed-form log density, with and without autograd.

log p(x|l) = sum_d x_d l_d - softplus(l_d), checked against the same sum in float64
(``binary_cross_entropy_with_logits``). A float32 evaluation rounds each of the terms
x_d l_d, max(l_d, 0) and log sigmoid(|l_d|), and each partial sum, with relative error
at most 2^-24 per operation; with at most ``C = 8 + log2(D)`` roundings on any term's
way into the sum (the factor products and the summation tree) the error is below
``C * 2^-24 * sum_d (|x_d l_d| + max(l_d, 0) + 1)``.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from pyrovae.likelihoods import LIKELIHOODS
from pyrovae.likelihoods.bernoulli import bernoulli_log_prob_sum

#: Logits from the flat middle to where sigmoid(|l|) rounds to 1 in float32 and beyond.
LOGITS = [0.0, 1e-3, -1e-3, 0.5, -2.0, 7.0, -16.0, 17.0, -30.0, 45.0, -88.0, 100.0]


def _exact(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    bce = F.binary_cross_entropy_with_logits(
        logits.double(), x.double().expand_as(logits), reduction="none"
    )
    return -bce.sum(-1)


def _bound(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    lo, xo = logits.double(), x.double()
    terms = (xo * lo).abs() + lo.clamp(min=0) + 1.0
    rounds = 8 + math.log2(logits.shape[-1])
    return rounds * 2.0**-24 * terms.sum(-1)


def _cases(d: int, draws: int = 5):
    g = torch.Generator().manual_seed(d)
    grid = torch.tensor(LOGITS)
    idx = torch.randint(len(LOGITS), (draws, 3, d), generator=g)
    logits = grid[idx] + 0.1 * torch.randn(draws, 3, d, generator=g)
    x = torch.rand(3, d, generator=g)
    x = torch.where(torch.rand(3, d, generator=g) < 0.7, (x > 0.5).float(), x)  # 0/1 and grey
    return logits, x


@pytest.mark.parametrize("d", [784, 7, 6, 1])  # 16 factors per log, none, two, one entry
def test_evaluation_sum_matches_the_closed_form(d):
    logits, x = _cases(d)
    got = bernoulli_log_prob_sum(logits, x)  # (draws, 3): x broadcast over the draws
    assert got.shape == (5, 3) and got.dtype == torch.float32
    err = (got.double() - _exact(logits, x)).abs()
    assert (err <= _bound(logits, x)).all(), float((err / _bound(logits, x)).max())


def test_value_with_more_dimensions_and_another_dtype():
    logits, x = _cases(784)
    x2 = torch.stack([x, 1 - x]).double().unsqueeze(1)  # (2, 1, 3, 784) against (5, 3, 784)
    got = bernoulli_log_prob_sum(logits, x2)
    assert got.shape == (2, 5, 3) and got.dtype == torch.float64
    for i in range(2):
        err = (got[i] - _exact(logits, x2[i, 0])).abs()
        assert (err <= _bound(logits, x2[i, 0])).all()


def test_distribution_log_prob_with_and_without_autograd():
    """The distribution takes the evaluation sum without autograd and the softplus form
    with it: both equal the closed form, and the gradient is x - sigmoid(l)."""
    lik = LIKELIHOODS.get("bernoulli")((1, 4, 7))
    logits, x = _cases(28)
    params = logits.reshape(5, 3, 1, 1, 4, 7)
    xs = x.reshape(3, 1, 4, 7)
    exact, bound = _exact(logits, x), _bound(logits, x)
    with torch.no_grad():
        plain = lik(params).log_prob(xs)
    live = params.clone().requires_grad_(True)
    graded = lik(live).log_prob(xs)
    for got in (plain, graded.detach()):
        assert got.shape == (5, 3)
        assert ((got.double() - exact).abs() <= bound).all()
    (grad,) = torch.autograd.grad(graded.sum(), live)
    torch.testing.assert_close(
        grad.reshape(5, 3, 28), (x - torch.sigmoid(logits)), rtol=0, atol=1e-6
    )
