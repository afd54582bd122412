r"""Likelihoods for 8-bit images and for counts.

8-bit images, with data on the grid {0, 1/255, ..., 1} (pixel value k / 255):

* ``categorical256``: a free 256-way softmax per pixel (van den Oord et al.
  2016), p(x = k/255) = softmax(l)_k; 256 decoder outputs per pixel.
* ``discretized-logistic`` (Salimans et al. 2017; Kingma et al. 2016):
  p(x) = F((x + 1/510 - mu)/s) - F((x - 1/510 - mu)/s) with F the logistic CDF,
  the edge bins absorbing the tails (F(+inf) at 1, F(-inf) at 0); 2 outputs
  per pixel (mu, log s).

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
from torch.nn import functional as F

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
        inv_s = torch.exp(-self.log_scale)
        centered = value - self.loc
        plus = inv_s * (centered + 1 / 510)
        minus = inv_s * (centered - 1 / 510)
        cdf_plus, cdf_minus = torch.sigmoid(plus), torch.sigmoid(minus)
        log_cdf_plus = plus - F.softplus(plus)  # log F(plus), for the 0 bin
        log_one_minus_cdf_minus = -F.softplus(minus)  # log (1 - F(minus)), for the 255 bin
        mid = inv_s * centered
        # bin mass, with a density-based fallback where the difference underflows
        mass = (cdf_plus - cdf_minus).clamp_min(1e-12)
        log_pdf_mid = mid - self.log_scale - 2 * F.softplus(mid) - math.log(127.5)
        log_mass = torch.where(mass > 1e-5, mass.log(), log_pdf_mid)
        return torch.where(
            value < 0.5 / 255,
            log_cdf_plus,
            torch.where(value > 254.5 / 255, log_one_minus_cdf_minus, log_mass),
        )

    def sample(self, sample_shape=()):
        with torch.no_grad():
            shape = self._extended_shape(torch.Size(sample_shape))
            u = torch.rand(shape, dtype=self.loc.dtype, device=self.loc.device).clamp(
                1e-5, 1 - 1e-5
            )
            x = self.loc + torch.exp(self.log_scale) * (torch.log(u) - torch.log1p(-u))
            return (x.clamp(0, 1) * 255).round() / 255

    @property
    def mean(self) -> torch.Tensor:
        return self.loc.clamp(0, 1)


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
