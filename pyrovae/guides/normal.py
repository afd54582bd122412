"""Diagonal Normal amortized guide (Kingma & Welling 2014).

q(z|x) = N(z; mu(x), diag sigma(x)^2), sigma = softplus(.) + 1e-5, sampled by
the reparameterization z = mu + sigma * eps, eps ~ N(0, I), so gradients reach
mu and sigma but not eps.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch import nn
from torch.distributions.utils import _sum_rightmost
from torch.nn import functional as F

from . import GUIDES
from .base import GuideHead

#: Lower bound on posterior standard deviations, for numerical stability.
MIN_SCALE = 1e-5


class IndependentNormal(dist.Independent):
    """``Normal(loc, scale).to_event(n)`` whose ``expand`` to its own batch shape is free.

    ``pyro.plate`` expands the distribution at every sample site to the plate's
    batch shape; for an amortized guide that shape is already ``(B,)``, and
    returning the distribution itself (rather than a new one holding expanded
    views of ``loc`` and ``scale``) is exact and saves the construction and two
    autograd nodes per step. ``log_prob`` sums one event dim without the
    reshape that ``Independent.log_prob`` puts before the sum.
    """

    def expand(self, batch_shape, _instance=None):
        if _instance is None and torch.Size(batch_shape) == self.batch_shape:
            return self
        return super().expand(batch_shape, _instance)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        # ``_sum_rightmost`` reshapes to the same shape before summing one dim;
        # summing directly is the same reduction without the view node.
        log_prob = self.base_dist.log_prob(value)
        if self.reinterpreted_batch_ndims == 1:
            return log_prob.sum(-1)
        return _sum_rightmost(log_prob, self.reinterpreted_batch_ndims)


@GUIDES.register("normal")
class DiagonalNormalGuide(GuideHead):
    """q(z|x) = N(mu(x), diag(sigma(x)^2)) from one Linear layer."""

    def __init__(self, in_features: int, latent_dim: int) -> None:
        super().__init__(in_features, latent_dim)
        self.linear = nn.Linear(self.in_features, 2 * self.latent_dim)

    def loc_scale(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and standard deviation, each ``(B, latent_dim)``."""
        loc, raw = self.linear(features).chunk(2, dim=-1)
        return loc, F.softplus(raw) + MIN_SCALE

    def forward(self, features: torch.Tensor) -> dist.Distribution:
        loc, scale = self.loc_scale(features)
        return IndependentNormal(dist.Normal(loc, scale, validate_args=False), 1)
