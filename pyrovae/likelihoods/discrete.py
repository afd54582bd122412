r"""Likelihoods for 8-bit images and for counts.

8-bit images, with data on the grid {0, 1/255, ..., 1} (pixel value k / 255):

* ``categorical256``: a free 256-way softmax per pixel (van den Oord et al.
  2016), p(x = k/255) = softmax(l)_k; 256 decoder outputs per pixel.
* ``discretized-logistic`` (Salimans et al. 2017; Kingma et al. 2016): the
  logistic Logistic(mu, s) binned to the grey levels, each bin of width 1/255,
  p(x = k/255) = F(b_k) - F(a_k),  a_k = ((k - 1/2)/255 - mu)/s,  b_k = ((k + 1/2)/255 - mu)/s,
  with F the logistic CDF and the edge bins absorbing the tails (a_0 = -inf,
  b_255 = +inf); 2 outputs per pixel (mu, log s). The log mass is computed as
  log F(b) + log(1 - F(a)) + log(1 - exp(-(b - a))), exact in every regime, so
  there is no low-mass fallback to a density times the bin width (PixelCNN++'s,
  whose constant log 127.5 is for data on [-1, 1] with bins of width 2/255, and
  whose midpoint rule is off by up to a factor sinh(h)/h, h = 1/(510 s), in the
  tails). The mean is (1/255) sum_{j=1}^{255} (1 - F(((j - 1/2)/255 - mu)/s)), not
  mu.

Counts (non-negative integers), all with log link mu = exp(eta):

* ``poisson``: Poisson(x; mu(z)).
* ``negative-binomial``: NB with mean mu(z) and a learned inverse dispersion
  theta per feature (variance mu + mu^2 / theta; as in scVI, Lopez et al. 2018).
* ``zinb``: the zero-inflated NB, a gate pi(z) of structural zeros mixed with
  the NB above; 2 outputs per feature (eta, gate logit).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from pyro.distributions.torch_distribution import TorchDistribution
from torch import nn

from . import LIKELIHOODS
from .base import Likelihood

#: log-link clamp: mu = exp(eta) stays within float32 range.
MAX_LOG_RATE = 15.0


def _on_8bit_grid(x: torch.Tensor) -> torch.Tensor:
    k = x * 255
    return (x >= 0) & (x <= 1) & ((k - k.round()).abs() < 1e-3)


class Quantized256(TorchDistribution):
    """Categorical over the 256 grey levels k/255, elementwise; values in [0, 1]."""

    arg_constraints = {"logits": constraints.real}
    support = constraints.unit_interval

    def __init__(self, logits: torch.Tensor, validate_args=None) -> None:
        self.logits = logits  # (..., 256)
        super().__init__(logits.shape[:-1], validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        return Quantized256(self.logits.expand(*batch_shape, 256))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        k = (value * 255).round().long().clamp(0, 255)
        logp = self.logits.log_softmax(-1)
        shape = torch.broadcast_shapes(k.shape, logp.shape[:-1])
        logp = logp.expand(*shape, 256)
        return logp.gather(-1, k.expand(shape).unsqueeze(-1)).squeeze(-1)

    def sample(self, sample_shape=()):
        with torch.no_grad():
            k = dist.Categorical(logits=self.logits).sample(sample_shape)
            return k.to(self.logits.dtype) / 255

    @property
    def mean(self) -> torch.Tensor:
        levels = torch.arange(256, dtype=self.logits.dtype, device=self.logits.device) / 255
        return (self.logits.softmax(-1) * levels).sum(-1)


class DiscretizedLogistic(TorchDistribution):
    """Logistic(mu, s) discretized to the bins of k/255, elementwise."""

    arg_constraints = {"loc": constraints.real, "log_scale": constraints.real}
    support = constraints.unit_interval

    def __init__(self, loc: torch.Tensor, log_scale: torch.Tensor, validate_args=None) -> None:
        self.loc, self.log_scale = torch.broadcast_tensors(loc, log_scale)
        super().__init__(self.loc.shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        return DiscretizedLogistic(self.loc.expand(batch_shape), self.log_scale.expand(batch_shape))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        # in units of bins: bin k is [k - 1/2, k + 1/2) and the location is 255 mu. The
        # offset u = k - 255 mu is formed as (k - 256 mu) + mu: 256 mu is exact and, near
        # the location, so is k - 256 mu (Sterbenz), so u carries one rounding relative
        # to |u|, not one relative to 255 mu.
        k = (value * 255).round().clamp(0, 255)
        u = (k - 256 * self.loc) + self.loc
        inv_width = torch.exp(-self.log_scale) / 255  # 1 / (255 s): a bin in units of s
        b = (u + 0.5) * inv_width
        a = (u - 0.5) * inv_width
        log_f_b = -_softplus(-b)  # log F(b)
        log_sf_a = -_softplus(a)  # log (1 - F(a))
        # log(F(b) - F(a)) = log F(b) + log(1 - F(a)) + log(1 - exp(-(b - a))): no
        # difference of probabilities, so no cancellation in the tails
        log_width = -self.log_scale - math.log(255)  # log (b - a), exactly
        interior = log_f_b + log_sf_a + _log1mexp(log_width)
        return torch.where(k < 0.5, log_f_b, torch.where(k > 254.5, log_sf_a, interior))

    def sample(self, sample_shape=()):
        with torch.no_grad():
            shape = self._extended_shape(torch.Size(sample_shape))
            u = torch.rand(shape, dtype=self.loc.dtype, device=self.loc.device)
            # inverse logistic CDF; u = 0 gives -inf, which the clamp puts in the 0 bin
            x = self.loc + torch.exp(self.log_scale) * (torch.log(u) - torch.log1p(-u))
            return (x.clamp(0, 1) * 255).round() / 255

    @property
    def mean(self) -> torch.Tensor:
        # E[x] = (1/255) E[k] = (1/255) sum_{j=1}^{255} P(k >= j), P(k >= j) = 1 - F(edge_j),
        # summed over 16 edges at a time so that images need 16 copies, not 255
        edges = (torch.arange(1, 256, dtype=self.loc.dtype, device=self.loc.device) - 0.5) / 255
        loc, inv_s = self.loc.unsqueeze(-1), torch.exp(-self.log_scale).unsqueeze(-1)
        total = torch.zeros_like(self.loc)
        for chunk in edges.split(16):
            total = total + torch.sigmoid((loc - chunk) * inv_s).sum(-1)
        return total / 255


def _softplus(x: torch.Tensor) -> torch.Tensor:
    """log(1 + e^x) to rounding at every x (``torch.nn.functional.softplus`` returns x above 20)."""
    return torch.logaddexp(x, torch.zeros_like(x))


def _log1mexp(log_d: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(-d)) for d = exp(log_d) > 0, accurate for small and large d."""
    d = log_d.exp()
    # log(1 - e^-d) = log d - d/2 + log(sinh(d/2) / (d/2)) = log d - d/2 + d^2/24 - d^4/2880 ...;
    # below d = 1e-3 the first three terms are exact to 4e-16, and need no exp(-d) near 1
    series = log_d - d / 2 + d * d / 24
    return torch.where(d < 1e-3, series, torch.log(-torch.expm1(-d.clamp(min=1e-3))))


@LIKELIHOODS.register("categorical256")
class Categorical256Likelihood(Likelihood):
    """p(x|z): a 256-way softmax per pixel over grey levels k/255."""

    param_channels = 256
    support = "8-bit grey levels k/255 in [0, 1]"
    support_kind = "8bit"

    def forward(self, params: torch.Tensor) -> dist.Distribution:
        logits = params.movedim(-1 - self.event_dim, -1)
        return Quantized256(logits).to_event(self.event_dim)

    def in_support(self, x: torch.Tensor) -> torch.Tensor:
        return _on_8bit_grid(x)


@LIKELIHOODS.register("discretized-logistic")
class DiscretizedLogisticLikelihood(Likelihood):
    """p(x|z): a logistic per pixel with predicted mean and log-scale, binned to k/255."""

    param_channels = 2
    support = "8-bit grey levels k/255 in [0, 1]"
    support_kind = "8bit"

    def forward(self, params: torch.Tensor) -> dist.Distribution:
        loc, log_scale = params.unbind(-1 - self.event_dim)
        return DiscretizedLogistic(torch.sigmoid(loc), log_scale.clamp(min=-7.0)).to_event(
            self.event_dim
        )

    def in_support(self, x: torch.Tensor) -> torch.Tensor:
        return _on_8bit_grid(x)


class _Counts(Likelihood):
    support = "non-negative integer counts"
    support_kind = "count"

    def in_support(self, x: torch.Tensor) -> torch.Tensor:
        return (x >= 0) & (x == x.round())

    def _log_rate(self, eta: torch.Tensor) -> torch.Tensor:
        return eta.clamp(max=MAX_LOG_RATE)


@LIKELIHOODS.register("poisson")
class PoissonLikelihood(_Counts):
    """p(x|z) = prod_d Poisson(x_d; exp(eta_d(z)))."""

    param_channels = 1

    def forward(self, params: torch.Tensor) -> dist.Distribution:
        rate = self._log_rate(params.select(-1 - self.event_dim, 0)).exp()
        return dist.Poisson(rate, validate_args=False).to_event(self.event_dim)


class _Dispersed(_Counts):
    def __init__(self, data_shape: Sequence[int], theta: float = 1.0) -> None:
        super().__init__(data_shape)
        self.log_theta = nn.Parameter(torch.full(self.data_shape, math.log(float(theta))))

    def _nb_args(self, eta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # NB(total_count=theta, logits=log mu - log theta) has mean mu
        log_theta = self.log_theta.clamp(-10, 10)
        return log_theta.exp(), self._log_rate(eta) - log_theta


@LIKELIHOODS.register("negative-binomial")
class NegativeBinomialLikelihood(_Dispersed):
    """NB counts with mean exp(eta(z)) and learned inverse dispersion per feature."""

    param_channels = 1

    def forward(self, params: torch.Tensor) -> dist.Distribution:
        total, logits = self._nb_args(params.select(-1 - self.event_dim, 0))
        return dist.NegativeBinomial(total, logits=logits, validate_args=False).to_event(
            self.event_dim
        )


@LIKELIHOODS.register("zinb")
class ZINBLikelihood(_Dispersed):
    """Zero-inflated NB: structural zeros with probability sigmoid(g(z)), else NB."""

    param_channels = 2

    def forward(self, params: torch.Tensor) -> dist.Distribution:
        eta, gate = params.unbind(-1 - self.event_dim)
        total, logits = self._nb_args(eta)
        return dist.ZeroInflatedNegativeBinomial(
            total, logits=logits, gate_logits=gate, validate_args=False
        ).to_event(self.event_dim)
