"""The fast Bernoulli likelihood equals torch's ``Bernoulli(...).to_event`` (value, gradient
and ``expand``)."""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch

from pyrovae.likelihoods.bernoulli import IndependentBernoulli


def test_independent_bernoulli_matches_torch():
    """The closed-form log-likelihood equals torch's Bernoulli to float rounding
    (1e-5), in value and gradient, also for values broadcast over sample dimensions."""
    logits = torch.randn(3, 5, 2, 7, requires_grad=True)
    x = torch.rand(5, 2, 7)  # grey levels: the identity holds for any x in [0, 1]
    fast = IndependentBernoulli(dist.Bernoulli(logits=logits, validate_args=False), 2)
    slow = dist.Bernoulli(logits=logits, validate_args=False).to_event(2)
    assert fast.batch_shape == slow.batch_shape and fast.event_shape == slow.event_shape
    lp_fast, lp_slow = fast.log_prob(x), slow.log_prob(x)
    torch.testing.assert_close(lp_fast, lp_slow, rtol=1e-5, atol=1e-5)
    w = torch.randn(3, 5)
    g_fast = torch.autograd.grad((lp_fast * w).sum(), logits)[0]
    g_slow = torch.autograd.grad((lp_slow * w).sum(), logits)[0]
    torch.testing.assert_close(g_fast, g_slow, rtol=1e-5, atol=1e-6)
    # probs-parameterized bases fall back to torch
    probs = IndependentBernoulli(dist.Bernoulli(probs=torch.full((3, 4), 0.3)), 1)
    assert torch.allclose(probs.log_prob(torch.ones(3, 4)), torch.full((3,), 4 * math.log(0.3)))


def test_expand_is_free_to_the_own_shape_and_real_otherwise():
    d = IndependentBernoulli(dist.Bernoulli(logits=torch.zeros(4, 6)), 1)
    assert d.expand((4,)) is d
    bigger = d.expand((2, 4))
    assert bigger.batch_shape == (2, 4) and bigger.event_shape == (6,)
    assert type(bigger) is type(d)
    assert bigger.log_prob(d.sample()).shape == (2, 4)


def test_closed_form_gradient_in_float64():
    """The autograd path's closed-form backward (x - sigmoid(l) for the logits, l for the
    values) passes torch's finite-difference gradcheck and second-order gradgradcheck,
    with the values broadcast over a sample dimension, and equals the gradients of the
    softplus form including the values' gradient."""
    from torch.nn import functional as F

    from pyrovae.likelihoods.bernoulli import BernoulliLogProbSum

    torch.manual_seed(0)
    logits = (3 * torch.randn(4, 3, 32, dtype=torch.float64)).requires_grad_()
    x = torch.rand(3, 32, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(BernoulliLogProbSum.apply, (logits, x))
    assert torch.autograd.gradgradcheck(BernoulliLogProbSum.apply, (logits, x))
    w = torch.randn(4, 3, dtype=torch.float64)
    fast = torch.autograd.grad((BernoulliLogProbSum.apply(logits, x) * w).sum(), (logits, x))
    softplus = ((logits * x).sum(-1) - F.softplus(logits).sum(-1)) * w
    slow = torch.autograd.grad(softplus.sum(), (logits, x))
    for a, b in zip(fast, slow, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
