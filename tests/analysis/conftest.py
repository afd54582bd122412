"""The probabilistic PCA model with closed forms, shared by the analysis tests.

p(z) = N(0, I), p(x|z) = N(W z + b, s^2 I)  =>  p(x) = N(b, W W^T + s^2 I) and
p(z|x) = N(S W^T (x - b) / s^2, S), S = (I + W^T W / s^2)^{-1} (Tipping & Bishop 1999).
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn

from pyrovae import sites

D, L, S = 5, 2, 0.5


class PPCA(nn.Module):
    """A linear-Gaussian latent model with an exact or a mismatched Gaussian guide."""

    has_latent_sites = True
    data_shape = (D,)
    latent_dim = L

    class likelihood:  # noqa: N801 - the attribute the chunking reads
        param_channels = 1

    def __init__(self, exact: bool, widen: float = 1.5) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.W = torch.randn(D, L, generator=g)
        self.b = torch.randn(D, generator=g)
        self.exact, self.widen, self.beta = exact, widen, 1.0
        self.cov_post = torch.linalg.inv(torch.eye(L) + self.W.T @ self.W / S**2)

    def marginal(self) -> dist.Distribution:
        return dist.MultivariateNormal(self.b, self.W @ self.W.T + S**2 * torch.eye(D))

    def prior_distribution(self):
        return dist.Normal(torch.zeros(L), torch.ones(L)).to_event(1)

    def model(self, x):
        with pyro.plate(sites.DATA_PLATE, x.shape[0]):
            z = pyro.sample(sites.LATENT, self.prior_distribution())
            pyro.sample(sites.OBS, dist.Normal(z @ self.W.T + self.b, S).to_event(1), obs=x)

    def encode(self, x):
        loc = (x - self.b) @ self.W @ self.cov_post.T / S**2
        if self.exact:
            return dist.MultivariateNormal(loc, covariance_matrix=self.cov_post)
        return dist.Normal(loc, self.widen * self.cov_post.diagonal().sqrt()).to_event(1)

    def sample_latent(self, n):
        return torch.randn(n, L)

    def decode(self, z):
        return dist.Normal(z @ self.W.T + self.b, S).to_event(1)

    def guide(self, x):
        with pyro.plate(sites.DATA_PLATE, x.shape[0]):
            pyro.sample(sites.LATENT, self.encode(x))


@pytest.fixture
def ppca_class():
    return PPCA
