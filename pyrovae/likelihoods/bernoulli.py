"""Bernoulli likelihood for binary (or [0, 1]-valued) data.

log p(x|z) = sum_d x_d log sigmoid(l_d) + (1 - x_d) log sigmoid(-l_d),
with logits l = decoder(z) (Kingma & Welling 2014). For grey levels in
[0, 1] this is the usual cross-entropy objective (not a normalised density;
see the continuous Bernoulli of Loaiza-Ganem & Cunningham 2019).
"""

from __future__ import annotations

import pyro.distributions as dist
import torch

from . import LIKELIHOODS
from .base import Likelihood


@LIKELIHOODS.register("bernoulli")
class BernoulliLikelihood(Likelihood):
    """p(x|z) = prod_d Bernoulli(x_d; sigmoid(logits_d))."""

    param_channels = 1
    support = "values in [0, 1]"

    def forward(self, params: torch.Tensor) -> dist.Distribution:
        logits = params.select(-1 - self.event_dim, 0)
        # validate_args=False so grey levels in [0, 1] are accepted (checked by validate()).
        return dist.Bernoulli(logits=logits, validate_args=False).to_event(self.event_dim)

    def in_support(self, x: torch.Tensor) -> torch.Tensor:
        return (x >= 0) & (x <= 1)
