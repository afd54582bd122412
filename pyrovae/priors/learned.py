"""Learnable diagonal Normal prior p(z) = N(z; m, diag(s^2)).

m and s are point-estimated with the networks (empirical Bayes). It costs
one softplus per step over the standard Normal.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F

from . import PRIORS
from .base import Prior


@PRIORS.register("learned")
class LearnedNormalPrior(Prior):
    """p(z) = N(m, diag(s^2)); m = 0, s = 1 at initialisation."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__(latent_dim)
        self.loc = nn.Parameter(torch.zeros(self.latent_dim))
        # softplus(raw) = 1 at raw = log(e - 1)
        self.raw_scale = nn.Parameter(torch.full((self.latent_dim,), math.log(math.e - 1)))

    def forward(self) -> dist.Distribution:
        return dist.Normal(self.loc, F.softplus(self.raw_scale)).to_event(1)
