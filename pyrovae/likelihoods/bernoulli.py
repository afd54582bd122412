"""Bernoulli likelihood for binary (or [0, 1]-valued) data.

log p(x|z) = sum_d x_d log sigmoid(l_d) + (1 - x_d) log sigmoid(-l_d),
with logits l = decoder(z) (Kingma & Welling 2014). For grey levels in
[0, 1] this is the usual cross-entropy objective (not a normalised density;
see the continuous Bernoulli of Loaiza-Ganem & Cunningham 2019).
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch.distributions.utils import _sum_rightmost
from torch.nn import functional as F

from . import LIKELIHOODS
from .base import Likelihood


class IndependentBernoulli(dist.Independent):
    """``Bernoulli(logits).to_event(n)`` with two exact shortcuts for training.

    * ``log_prob`` sums the elementwise cross-entropy over the event dims and
      negates the (much smaller) sum, instead of negating every element first
      as ``Bernoulli.log_prob`` does. Negation is exact and commutes with
      floating-point rounding, so values and gradients are bit-identical.
    * ``expand`` to the distribution's own batch shape (what ``pyro.plate``
      asks for at every sample site) returns the distribution itself instead of
      a copy with expanded views of its logits.

    Construct it as ``IndependentBernoulli(dist.Bernoulli(logits=...), n)``.
    """

    def expand(self, batch_shape, _instance=None):
        if _instance is None and torch.Size(batch_shape) == self.batch_shape:
            return self
        return super().expand(batch_shape, _instance)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        base = self.base_dist
        if base._validate_args or "logits" not in base.__dict__:
            return super().log_prob(value)
        logits = base.logits
        if value.shape != logits.shape:
            return super().log_prob(value)
        nll = F.binary_cross_entropy_with_logits(logits, value, reduction="none")
        n = self.reinterpreted_batch_ndims
        return -(nll.sum(-1) if n == 1 else _sum_rightmost(nll, n))


@LIKELIHOODS.register("bernoulli")
class BernoulliLikelihood(Likelihood):
    """p(x|z) = prod_d Bernoulli(x_d; sigmoid(logits_d))."""

    param_channels = 1
    support = "values in [0, 1]"
    support_kind = "binary"

    def forward(self, params: torch.Tensor) -> dist.Distribution:
        # The single parameter channel is dropped with a view (squeeze), which
        # backpropagates without the zero-filled copy that ``select`` needs.
        logits = params.squeeze(-1 - self.event_dim)
        # validate_args=False so grey levels in [0, 1] are accepted (checked by validate()).
        base = dist.Bernoulli(logits=logits, validate_args=False)
        return IndependentBernoulli(base, self.event_dim)

    def in_support(self, x: torch.Tensor) -> torch.Tensor:
        return (x >= 0) & (x <= 1)
