"""Standard Normal prior p(z) = N(0, I) (Kingma & Welling 2014)."""

from __future__ import annotations

import pyro.distributions as dist
import torch

from . import PRIORS
from .base import Prior


@PRIORS.register("normal")
class StandardNormalPrior(Prior):
    """p(z) = N(z; 0, I). No parameters."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__(latent_dim)
        self.register_buffer("loc", torch.zeros(self.latent_dim))
        self.register_buffer("scale", torch.ones(self.latent_dim))

    def forward(self) -> dist.Distribution:
        return dist.Normal(self.loc, self.scale).to_event(1)
