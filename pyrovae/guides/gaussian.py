r"""Correlated Gaussian guides.

* ``lowrank``: q(z|x) = N(mu(x), W(x) W(x)^T + diag d(x)), W of rank r
  (Rezende et al. 2014 used rank one); O(D r) parameters per data point.
* ``full``: q(z|x) = N(mu(x), L(x) L(x)^T) with a full lower-triangular
  Cholesky factor L (positive diagonal by softplus); O(D^2) parameters.

Both are reparameterized (z = mu + L eps), so gradients pass through the
sample. Their KL to a standard Normal prior has no registered closed form in
``torch.distributions``, so ``TraceMeanField_ELBO`` estimates it by Monte Carlo.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from . import GUIDES
from .base import GuideHead
from .normal import MIN_SCALE


@GUIDES.register("lowrank")
class LowRankNormalGuide(GuideHead):
    """q(z|x) = N(mu, W W^T + diag d) with W of rank ``rank`` (default 2)."""

    def __init__(self, in_features: int, latent_dim: int, rank: int = 2) -> None:
        super().__init__(in_features, latent_dim)
        if isinstance(rank, bool) or int(rank) != rank or int(rank) < 1:
            raise ConfigError(f"guide option rank must be a positive integer; got {rank!r}")
        self.rank = int(rank)
        d = self.latent_dim
        self.linear = nn.Linear(self.in_features, 2 * d + d * self.rank)
        with torch.no_grad():  # start close to a diagonal guide
            self.linear.weight[2 * d :].mul_(0.1)
            self.linear.bias[2 * d :].zero_()

    def forward(self, features: torch.Tensor) -> dist.Distribution:
        d = self.latent_dim
        out = self.linear(features)
        loc, raw = out[..., :d], out[..., d : 2 * d]
        factor = out[..., 2 * d :].reshape(*out.shape[:-1], d, self.rank)
        return dist.LowRankMultivariateNormal(
            loc, factor, F.softplus(raw) ** 2 + MIN_SCALE, validate_args=False
        )


@GUIDES.register("full")
class FullNormalGuide(GuideHead):
    """q(z|x) = N(mu, L L^T) with a full Cholesky factor L predicted from x."""

    def __init__(self, in_features: int, latent_dim: int) -> None:
        super().__init__(in_features, latent_dim)
        d = self.latent_dim
        rows, cols = torch.tril_indices(d, d)
        self.register_buffer("rows", rows)
        self.register_buffer("cols", cols)
        self.register_buffer("is_diag", rows == cols)
        self.linear = nn.Linear(self.in_features, d + rows.numel())
        with torch.no_grad():
            off = d + torch.nonzero(~self.is_diag).flatten()
            self.linear.weight[off].mul_(0.1)
            self.linear.bias[off].zero_()

    def forward(self, features: torch.Tensor) -> dist.Distribution:
        d = self.latent_dim
        out = self.linear(features)
        loc, entries = out[..., :d], out[..., d:]
        entries = torch.where(self.is_diag, F.softplus(entries) + MIN_SCALE, entries)
        tril = features.new_zeros(*out.shape[:-1], d, d)
        tril[..., self.rows, self.cols] = entries
        return dist.MultivariateNormal(loc, scale_tril=tril, validate_args=False)
