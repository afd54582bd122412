r"""Likelihoods for continuous data.

* ``continuous-bernoulli`` (Loaiza-Ganem & Cunningham 2019): the normalised
  density on [0, 1] proportional to lambda^x (1 - lambda)^(1 - x),
  p(x|lambda) = C(lambda) lambda^x (1 - lambda)^(1-x), fixing the missing
  normaliser of the Bernoulli cross-entropy on grey levels.
* ``gaussian-learned``: N(mu(z), s^2) with one learned scale s for all dimensions.
* ``gaussian-het``: N(mu(z), sigma(z)^2) with a decoder-predicted scale per
  dimension (heteroscedastic; Nix & Weigend 1994), sigma = softplus(.) + 1e-3.
* ``laplace``: prod_d exp(-|x_d - mu_d| / b) / (2b), one learned scale b;
  an L1 reconstruction loss, more robust to outliers than the Gaussian.
* ``student-t``: prod_d t_nu(x_d; mu_d, s), one learned scale s, fixed nu.
* ``beta``: Beta(x; a(z), b(z)) for data strictly inside (0, 1), both
  concentrations predicted by the decoder (softplus + 1e-3).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from . import LIKELIHOODS
from .base import Likelihood


def _inv_softplus(y: float) -> float:
    if not y > 0:
        raise ConfigError(f"likelihood scale must be > 0; got {y}")
    return y + math.log(-math.expm1(-y))


class _LearnedScale(Likelihood):
    """A location likelihood with one learned positive scale."""

    support = "finite real values"

    def __init__(self, data_shape: Sequence[int], scale: float = 0.1) -> None:
        super().__init__(data_shape)
        self.raw_scale = nn.Parameter(torch.tensor(_inv_softplus(float(scale))))

    @property
    def scale(self) -> torch.Tensor:
        return F.softplus(self.raw_scale) + 1e-4

    def _loc(self, params: torch.Tensor) -> torch.Tensor:
        return params.select(-1 - self.event_dim, 0)


@LIKELIHOODS.register("continuous-bernoulli")
class ContinuousBernoulliLikelihood(Likelihood):
    """p(x|z) = prod_d CB(x_d; sigmoid(logits_d)), a proper density on [0, 1]."""

    param_channels = 1
    support = "values in [0, 1]"
    support_kind = "unit"

    def forward(self, params: torch.Tensor) -> dist.Distribution:
        logits = params.select(-1 - self.event_dim, 0)
        return dist.ContinuousBernoulli(logits=logits, validate_args=False).to_event(self.event_dim)

    def in_support(self, x: torch.Tensor) -> torch.Tensor:
        return (x >= 0) & (x <= 1)


@LIKELIHOODS.register("gaussian-learned")
class LearnedGaussianLikelihood(_LearnedScale):
    """p(x|z) = prod_d N(x_d; mu_d(z), s^2), one learned s (initial ``scale``, default 0.1)."""

    def forward(self, params: torch.Tensor) -> dist.Distribution:
        return dist.Normal(self._loc(params), self.scale, validate_args=False).to_event(
            self.event_dim
        )


@LIKELIHOODS.register("gaussian-het")
class HeteroscedasticGaussianLikelihood(Likelihood):
    """p(x|z) = prod_d N(x_d; mu_d(z), sigma_d(z)^2), both predicted by the decoder."""

    param_channels = 2
    support = "finite real values"

    def forward(self, params: torch.Tensor) -> dist.Distribution:
        loc, raw = params.unbind(-1 - self.event_dim)
        scale = F.softplus(raw) + 1e-3
        return dist.Normal(loc, scale, validate_args=False).to_event(self.event_dim)


@LIKELIHOODS.register("laplace")
class LaplaceLikelihood(_LearnedScale):
    """p(x|z) = prod_d Laplace(x_d; mu_d(z), b), one learned b (initial ``scale``)."""

    def forward(self, params: torch.Tensor) -> dist.Distribution:
        return dist.Laplace(self._loc(params), self.scale, validate_args=False).to_event(
            self.event_dim
        )


@LIKELIHOODS.register("student-t")
class StudentTLikelihood(_LearnedScale):
    """p(x|z) = prod_d t_df(x_d; mu_d(z), s), one learned s; ``df`` fixed (default 4)."""

    def __init__(self, data_shape: Sequence[int], scale: float = 0.1, df: float = 4.0) -> None:
        super().__init__(data_shape, scale)
        if not float(df) > 0:
            raise ConfigError(f"likelihood option df must be > 0; got {df}")
        self.register_buffer("df", torch.tensor(float(df)))

    def forward(self, params: torch.Tensor) -> dist.Distribution:
        return dist.StudentT(self.df, self._loc(params), self.scale, validate_args=False).to_event(
            self.event_dim
        )


@LIKELIHOODS.register("beta")
class BetaLikelihood(Likelihood):
    """p(x|z) = prod_d Beta(x_d; a_d(z), b_d(z)) for data in the open interval (0, 1)."""

    param_channels = 2
    support = "values strictly between 0 and 1"
    support_kind = "open-unit"
    missing_value = 0.5

    def forward(self, params: torch.Tensor) -> dist.Distribution:
        a, b = (F.softplus(p) + 1e-3 for p in params.unbind(-1 - self.event_dim))
        return dist.Beta(a, b, validate_args=False).to_event(self.event_dim)

    def in_support(self, x: torch.Tensor) -> torch.Tensor:
        return (x > 0) & (x < 1)
