"""Bernoulli likelihood for binary (or [0, 1]-valued) data.

log p(x|z) = sum_d x_d log sigmoid(l_d) + (1 - x_d) log sigmoid(-l_d),
with logits l = decoder(z) (Kingma & Welling 2014). For grey levels in
[0, 1] this is the usual cross-entropy objective (not a normalised density;
see the continuous Bernoulli of Loaiza-Ganem & Cunningham 2019).
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch.nn import functional as F

from ..data.validation import all_values
from . import LIKELIHOODS
from .base import Likelihood


class IndependentBernoulli(dist.Independent):
    """``Bernoulli(logits).to_event(n)`` with two exact shortcuts for training.

    * ``log_prob`` computes sum_d x_d l_d - softplus(l_d), the Bernoulli
      log-likelihood in closed form (equal to minus the cross-entropy up to
      float rounding), as a batched matrix product and one softplus pass; data
      shared by many samples of z (importance sampling) are not copied.
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
        n = self.reinterpreted_batch_ndims
        if value.shape[value.dim() - n :] != logits.shape[logits.dim() - n :]:
            return super().log_prob(value)
        # log p(x) = sum_d x_d l_d - softplus(l_d), exact for x in [0, 1]: one batched
        # matrix product (value broadcast over extra sample dimensions without a copy)
        # and one softplus pass, instead of the cross-entropy's four elementwise passes.
        lf, vf = (logits.flatten(-n), value.flatten(-n)) if n > 1 else (logits, value)
        xl = (lf.unsqueeze(-2) @ vf.unsqueeze(-1)).squeeze(-1).squeeze(-1)
        return xl - F.softplus(lf).sum(-1)


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

    def caveat(self, x) -> str | None:
        """Values strictly between 0 and 1: the Bernoulli mass is not a density on [0, 1],
        so its ELBO bounds no log-likelihood of these data."""
        if all_values(x, lambda t: (t == 0) | (t == 1)):
            return None
        return (
            "the bernoulli likelihood meets data that are not binary (values strictly "
            "between 0 and 1): its log p(x|z) is then not a normalised log-likelihood, so "
            "its ELBO bounds no log p(x); use --likelihood continuous-bernoulli, or "
            "--binarize static (or dynamic)"
        )
