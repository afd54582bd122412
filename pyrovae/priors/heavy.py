r"""Heavy-tailed factorized priors.

* Laplace: p(z) = prod_d exp(-|z_d| / b) / (2 b).
* Student-t: p(z) = prod_d t_nu(z_d; 0, s), with nu degrees of freedom
  (nu -> infinity recovers N(0, s^2)).

Heavier tails than N(0, I) leave room for outlying codes, which the
Gaussian prior penalises quadratically (see e.g. Mathieu et al. 2019 on
priors and disentanglement). There is no closed-form KL from a Gaussian guide,
so ``TraceMeanField_ELBO`` falls back to a Monte Carlo KL for these priors.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch

from ..errors import ConfigError
from . import PRIORS
from .base import Prior


def _positive(name: str, value: float) -> float:
    value = float(value)
    if not value > 0:
        raise ConfigError(f"prior option {name} must be > 0; got {value}")
    return value


@PRIORS.register("laplace")
class LaplacePrior(Prior):
    """p(z) = prod_d Laplace(z_d; 0, scale).

    Parameters
    ----------
    latent_dim : int
        Dimension of z.
    scale : float
        Scale b (variance 2 b^2). Default 1.
    """

    def __init__(self, latent_dim: int, scale: float = 1.0) -> None:
        super().__init__(latent_dim)
        self.register_buffer("loc", torch.zeros(self.latent_dim))
        self.register_buffer("scale", torch.full((self.latent_dim,), _positive("scale", scale)))

    def forward(self) -> dist.Distribution:
        return dist.Laplace(self.loc, self.scale).to_event(1)


@PRIORS.register("student-t")
class StudentTPrior(Prior):
    """p(z) = prod_d StudentT(z_d; df, 0, scale).

    Parameters
    ----------
    latent_dim : int
        Dimension of z.
    df : float
        Degrees of freedom nu (> 0). Default 3.
    scale : float
        Scale s. Default 1.
    """

    def __init__(self, latent_dim: int, df: float = 3.0, scale: float = 1.0) -> None:
        super().__init__(latent_dim)
        self.register_buffer("df", torch.full((self.latent_dim,), _positive("df", df)))
        self.register_buffer("loc", torch.zeros(self.latent_dim))
        self.register_buffer("scale", torch.full((self.latent_dim,), _positive("scale", scale)))

    def forward(self) -> dist.Distribution:
        return dist.StudentT(self.df, self.loc, self.scale).to_event(1)
