"""Every registered likelihood is a normalised distribution on its support.

For random decoder outputs, probabilities over the support sum (discrete) or
integrate (continuous, trapezoid rule on a fine grid) to 1. Tolerances:
1e-4 for sums, 2e-3 for integrals (grid error and truncated tails). The
Bernoulli likelihood, which also accepts grey levels as a cross-entropy
objective, is checked as a distribution on {0, 1}.
"""

from __future__ import annotations

import pytest
import torch

from pyrovae.likelihoods import LIKELIHOODS

GRIDS = {
    "binary": (torch.tensor([0.0, 1.0]), True),
    "8bit": (torch.arange(256) / 255.0, True),
    "count": (torch.arange(0, 3000).float(), True),
    "unit": (torch.linspace(0, 1, 20001), False),
    "open-unit": (torch.linspace(-35, 35, 200001).double(), False),  # logits u, x = sigmoid(u)
    "real": (torch.linspace(-60, 60, 200001), False),
}


@pytest.mark.parametrize("name", LIKELIHOODS.names())
def test_likelihood_normalizes(name):
    torch.manual_seed(0)
    lik = LIKELIHOODS.get(name)((1,))
    grid, discrete = GRIDS[lik.support_kind]
    # on (0, 1) integrate over u = logit(x), dx = x (1 - x) du, to resolve the endpoints
    open_unit = lik.support_kind == "open-unit"
    if open_unit:  # float64 throughout, so that sigmoid(u) stays inside (0, 1)
        lik = lik.double()
    x = torch.sigmoid(grid) if open_unit else grid
    jac = (x * (1 - x)).double() if open_unit else 1.0
    inside = lik.in_support(x)
    assert inside.all()
    for _ in range(3):
        params = 0.7 * torch.randn(1, lik.param_channels, 1).to(x.dtype)
        with torch.no_grad():
            d = lik(params)
            p = d.log_prob(x.reshape(-1, 1)).double().exp() * jac
        p = torch.where(torch.isfinite(p), p, torch.zeros_like(p))
        total = p.sum() if discrete else torch.trapezoid(p, grid.double())
        assert total.item() == pytest.approx(1.0, abs=1e-4 if discrete else 2e-3), name
