"""Every registered likelihood is a normalised distribution on its support.

For random decoder outputs, probabilities over the support sum (discrete) to 1,
or integrate (continuous, trapezoid rule on a fine grid) to the distribution's
analytic mass on the grid's range (its CDF; the heavy tails of Student-t and
Beta likelihoods with small concentrations leave out up to 1e-3). Tolerances:
1e-6 for sums (float32 rounding of a few hundred terms); 1e-5 for integrals, the
trapezoid rule's error on these grids (largest at the Laplace's kink,
h^2 / (12 b^2) = 3e-6 for the step h = 6e-4 and the smallest scale b = 0.1; smooth
densities converge geometrically). The Bernoulli likelihood, which also accepts
grey levels as a cross-entropy objective, is checked as a distribution on {0, 1}.
"""

from __future__ import annotations

import pyro.distributions as dist
import pytest
import torch
from scipy import special, stats

from pyrovae.likelihoods import LIKELIHOODS

GRIDS = {
    "binary": (torch.tensor([0.0, 1.0]), True),
    "8bit": (torch.arange(256) / 255.0, True),
    "count": (torch.arange(0, 3000).float(), True),
    "unit": (torch.linspace(0, 1, 20001), False),
    "open-unit": (torch.linspace(-35, 35, 200001).double(), False),  # logits u, x = sigmoid(u)
    "real": (torch.linspace(-60, 60, 200001), False),
}


def univariate_cdf(d, x: torch.Tensor) -> torch.Tensor:
    """CDF of a univariate distribution at ``x``, in float64 (SciPy where torch has none)."""
    if isinstance(d, dist.StudentT):
        args = (d.df, d.loc, d.scale)
        f = stats.t.cdf(x.double().numpy(), *(a.double().numpy() for a in args))
    elif isinstance(d, dist.Beta):
        args = (d.concentration1, d.concentration0, x)
        f = special.betainc(*(a.double().numpy() for a in args))
    else:
        return d.cdf(x.to(d.mean.dtype)).double()
    return torch.as_tensor(f, dtype=torch.float64)


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
        if discrete:
            assert p.sum().item() == pytest.approx(1.0, abs=1e-6), name
        else:
            ends = x[[0, -1]].reshape(2, 1)
            mass = univariate_cdf(d.base_dist, ends).diff(dim=0).item()
            assert 0.99 < mass <= 1.0
            total = torch.trapezoid(p, grid.double())
            assert total.item() == pytest.approx(mass, abs=1e-5), name
