"""Bernoulli likelihood for binary (or [0, 1]-valued) data.

log p(x|z) = sum_d x_d log sigmoid(l_d) + (1 - x_d) log sigmoid(-l_d),
with logits l = decoder(z) (Kingma & Welling 2014). For grey levels in
[0, 1] this is the usual cross-entropy objective (not a normalised density;
see the continuous Bernoulli of Loaiza-Ganem & Cunningham 2019).

The sum is taken as

    sum_d x_d l_d - softplus(l_d) = sum_d x_d l_d - max(l_d, 0) + log prod_d sigmoid(|l_d|),

because torch's CPU kernels of ``log1p`` (and with it ``softplus``, ``logsigmoid`` and
``binary_cross_entropy_with_logits``) are not vectorized, about ten times slower per
entry than ``sigmoid`` and ``log``. Each factor sigmoid(|l|) lies in [1/2, 1], so a
product of :data:`LOG_GROUP` of them stays above 2^-16 and one logarithm serves
that many entries; the rounding of each factor and product (relative 2^-24) adds at
most about 6e-8 nats per entry, as ``softplus`` itself does. With autograd (training)
the same sum is the forward pass of :class:`BernoulliLogProbSum`, whose backward pass is
the closed-form gradient d/dl_d = x_d - sigmoid(l_d) (and d/dx_d = l_d), so neither
direction runs ``log1p``.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch

from ..data.validation import all_values
from . import LIKELIHOODS
from .base import Likelihood

#: Factors sigmoid(|l|) multiplied before one logarithm (pairs of halves of the last
#: dimension, while its length is even).
LOG_GROUP = 16


def _log_prod(factors: torch.Tensor) -> torch.Tensor:
    """sum over the last dim of log(factors), factors in [1/2, 1]: halves of the last dim
    are multiplied together up to :data:`LOG_GROUP` factors per logarithm. ``factors``
    may be overwritten."""
    group = 1
    while group < LOG_GROUP and factors.shape[-1] % 2 == 0:
        n = factors.shape[-1] // 2
        factors = factors[..., :n] * factors[..., n:]
        group *= 2
    return factors.log_().sum(-1)


def bernoulli_log_prob_sum(logits: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """sum_d x_d l_d - softplus(l_d) over the last dimension (see the module docstring),
    for evaluation without autograd; ``value`` broadcasts against ``logits``."""
    work = logits.abs()
    torch.sigmoid(work, out=work)
    log_sigmoid = _log_prod(work)
    if torch.broadcast_shapes(logits.shape, value.shape) == logits.shape and (
        value.dtype == logits.dtype
    ):
        # the buffer of the factors, free again, takes the two remaining passes
        xl = torch.mul(logits, value, out=work).sum(-1)
        positive = torch.clamp_min(logits, 0, out=work).sum(-1)
    else:
        xl = (logits * value).sum(-1)
        positive = torch.clamp_min(logits, 0).sum(-1)
    return xl - positive + log_sigmoid


class BernoulliLogProbSum(torch.autograd.Function):
    """:func:`bernoulli_log_prob_sum` with its closed-form gradient: for
    f(l, x) = sum_d x_d l_d - softplus(l_d), df/dl_d = x_d - sigmoid(l_d) and
    df/dx_d = l_d (the gradients are reduced to each input's shape where ``value``
    broadcasts against ``logits``). The backward pass is made of differentiable torch
    operations, so higher derivatives are available too."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(logits, value)
        return bernoulli_log_prob_sum(logits, value)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        logits, value = ctx.saved_tensors
        g = grad.unsqueeze(-1)
        grad_logits = grad_value = None
        if ctx.needs_input_grad[0]:
            grad_logits = (g * (value - torch.sigmoid(logits))).sum_to_size(logits.shape)
        if ctx.needs_input_grad[1]:
            grad_value = (g * logits).sum_to_size(value.shape)
        return grad_logits, grad_value


class IndependentBernoulli(dist.Independent):
    """``Bernoulli(logits).to_event(n)`` with two exact shortcuts for training.

    * ``log_prob`` computes sum_d x_d l_d - softplus(l_d), the Bernoulli
      log-likelihood in closed form (equal to minus the cross-entropy up to
      float rounding) by :func:`bernoulli_log_prob_sum`, with autograd through
      :class:`BernoulliLogProbSum`'s closed-form gradient.
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
        # log p(x) = sum_d x_d l_d - softplus(l_d), exact for x in [0, 1]
        lf, vf = (logits.flatten(-n), value.flatten(-n)) if n > 1 else (logits, value)
        if not (torch.is_grad_enabled() and (lf.requires_grad or vf.requires_grad)):
            return bernoulli_log_prob_sum(lf, vf)
        return BernoulliLogProbSum.apply(lf, vf)


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
