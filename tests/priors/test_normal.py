"""The standard Normal prior's fast distribution is bit-identical to ``Normal(0, 1)``."""

from __future__ import annotations

import pyro.distributions as dist
import torch

from pyrovae.priors.normal import StandardNormal


def test_standard_normal_is_bit_identical():
    shape = (64, 7)
    scales = torch.logspace(-30, 3, shape[-1])
    z = (torch.randn(shape) * scales).requires_grad_()
    fast = StandardNormal(torch.zeros(7), torch.ones(7)).expand(shape)
    slow = dist.Normal(torch.zeros(7), torch.ones(7)).expand(shape)
    assert type(fast) is StandardNormal
    lp_fast, lp_slow = fast.log_prob(z), slow.log_prob(z)
    assert torch.equal(lp_fast, lp_slow)
    w = torch.randn(shape)
    g_fast = torch.autograd.grad((lp_fast * w).sum(), z)[0]
    g_slow = torch.autograd.grad((lp_slow * w).sum(), z)[0]
    assert torch.equal(g_fast, g_slow)
    # other shapes (a sample dim) and dtypes fall back to Normal.log_prob
    z3 = torch.randn(2, 64, 7)
    assert torch.equal(fast.log_prob(z3), slow.log_prob(z3))
    assert torch.equal(fast.log_prob(z.double()), slow.log_prob(z.double()))
    # the KL registered for Normal pairs still applies
    q = dist.Normal(torch.randn(64, 7), torch.rand(64, 7) + 0.5)
    assert torch.equal(
        torch.distributions.kl_divergence(q, fast), torch.distributions.kl_divergence(q, slow)
    )
