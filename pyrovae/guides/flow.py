r"""Inverse autoregressive flow guide (Kingma et al. 2016).

z_0 ~ N(mu(x), diag sigma(x)^2), then K conditional affine autoregressive
steps z_k = m_k(z_{k-1}, h) + s_k(z_{k-1}, h) * z_{k-1}, with h the encoder
features as context, so

    log q(z_K|x) = log N(z_0; mu, sigma^2) - sum_k sum_d log s_{k,d}.

Sampling and the density of the guide's own samples (what the ELBO needs)
take one network pass per step; Pyro's transforms cache the inverse. Built
from Pyro's ``ConditionalAffineAutoregressive`` transforms; each MADE network
uses its own random ordering of the dimensions.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from pyro.distributions.transforms import ConditionalAffineAutoregressive
from pyro.nn import ConditionalAutoRegressiveNN
from torch import nn

from ..errors import ConfigError
from . import GUIDES
from .base import GuideHead
from .normal import DiagonalNormalGuide

#: Draws used for the Monte Carlo mean and variance of a flow posterior.
MOMENT_SAMPLES = 1000

#: At most this many latent vectors (draws x rows) are pushed through the flow at once
#: when estimating moments, so memory does not grow with draws x batch size (the
#: flow's networks hold a few hundred floats per vector).
MOMENT_CHUNK_ROWS = 2**15


class FlowPosterior(dist.TransformedDistribution):
    """A flow-transformed distribution whose ``mean`` / ``variance`` are Monte Carlo
    estimates from :data:`MOMENT_SAMPLES` draws (they have no closed form).

    The draws are taken in chunks of at most :data:`MOMENT_CHUNK_ROWS` latent vectors
    and accumulated as float64 sums and sums of squares, so the memory used does not
    depend on the batch size (all 1000 draws of 10,000 rows at once needed over 20 GB)."""

    def _moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        rows = max(1, math.prod(self.batch_shape))
        per_chunk = max(1, min(MOMENT_SAMPLES, MOMENT_CHUNK_ROWS // rows))
        total = total_sq = None
        done = 0
        with torch.no_grad():
            while done < MOMENT_SAMPLES:
                k = min(per_chunk, MOMENT_SAMPLES - done)
                z = self.sample((k,)).double()
                s, sq = z.sum(0), (z * z).sum(0)
                total = s if total is None else total + s
                total_sq = sq if total_sq is None else total_sq + sq
                done += k
        mean = total / done
        var = (total_sq - done * mean * mean) / (done - 1)
        dtype = self.base_dist.mean.dtype
        return mean.to(dtype), var.clamp_min(0.0).to(dtype)

    @property
    def mean(self) -> torch.Tensor:
        return self._moments()[0]

    @property
    def variance(self) -> torch.Tensor:
        return self._moments()[1]

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(FlowPosterior, _instance)
        return super().expand(batch_shape, _instance=new)


@GUIDES.register("iaf")
class IAFGuide(GuideHead):
    """A diagonal Normal followed by ``flows`` IAF steps (default 2) of width ``hidden``."""

    def __init__(
        self, in_features: int, latent_dim: int, flows: int = 2, hidden: int | None = None
    ) -> None:
        super().__init__(in_features, latent_dim)
        if self.latent_dim < 2:
            raise ConfigError("the iaf guide needs latent_dim >= 2")
        if int(flows) < 1:
            raise ConfigError(f"guide option flows must be >= 1; got {flows}")
        width = int(hidden or max(4 * self.latent_dim, 32))
        self.base = DiagonalNormalGuide(in_features, latent_dim)
        self.flows = nn.ModuleList(
            ConditionalAffineAutoregressive(
                ConditionalAutoRegressiveNN(self.latent_dim, self.in_features, [width]),
                stable=True,
            )
            for _ in range(int(flows))
        )

    def forward(self, features: torch.Tensor) -> dist.Distribution:
        loc, scale = self.base.loc_scale(features)
        base = dist.Normal(loc, scale, validate_args=False).to_event(1)
        steps = [f.condition(features) for f in self.flows]
        return FlowPosterior(base, steps, validate_args=False)
