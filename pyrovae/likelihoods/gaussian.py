"""Gaussian likelihood with a fixed scale.

log p(x|z) = sum_d log N(x_d; mu_d(z), sigma^2)
           = -||x - mu(z)||^2 / (2 sigma^2) - D log(sigma sqrt(2 pi)),
so maximising it is least squares with weight 1 / (2 sigma^2): the fixed
scale sets the balance between reconstruction and KL (Kingma & Welling 2014).
"""

from __future__ import annotations

from collections.abc import Sequence

import pyro.distributions as dist
import torch

from ..errors import ConfigError
from . import LIKELIHOODS
from .base import Likelihood


@LIKELIHOODS.register("gaussian")
class GaussianLikelihood(Likelihood):
    """p(x|z) = prod_d N(x_d; mu_d(z), scale^2) with a fixed ``scale``.

    Parameters
    ----------
    data_shape : tuple of int
        Shape of one datum.
    scale : float
        Observation noise standard deviation (> 0). Default 0.1.
    """

    param_channels = 1
    support = "finite real values"

    def __init__(self, data_shape: Sequence[int], scale: float = 0.1) -> None:
        super().__init__(data_shape)
        if not float(scale) > 0:
            raise ConfigError(f"gaussian likelihood scale must be > 0; got {scale}")
        self.register_buffer("scale", torch.tensor(float(scale)))

    def forward(self, params: torch.Tensor) -> dist.Distribution:
        loc = params.select(-1 - self.event_dim, 0)
        return dist.Normal(loc, self.scale, validate_args=False).to_event(self.event_dim)
