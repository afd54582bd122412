r"""Mixture priors: a mixture of Gaussians, and the VampPrior.

Mixture of Gaussians (e.g. Dilokthanakul et al. 2016; Tomczak & Welling 2018,
Sec. 3.1), with K learnable components:

    p(z) = sum_k pi_k N(z; m_k, diag(s_k^2)),   pi = softmax(w).

VampPrior (Tomczak & Welling 2018): the prior is the average of the
encoder's own posteriors at K learnable pseudo-inputs u_k,

    p(z) = (1/K) sum_k q(z | u_k),

which approximates the aggregate posterior (the optimal prior for the ELBO).
It is bound to the VAE's encoder through :meth:`Prior.bind`.

Neither has a closed-form KL from a Gaussian guide; both are evaluated by
their log density (Monte Carlo KL).
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from . import PRIORS
from .base import Prior


def _count(value: int) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise ConfigError(f"prior option components must be a positive integer; got {value!r}")
    return int(value)


@PRIORS.register("mog")
class MixtureOfGaussiansPrior(Prior):
    """p(z) = sum_k pi_k N(m_k, diag s_k^2) with learnable pi, m, s.

    Parameters
    ----------
    latent_dim : int
        Dimension of z.
    components : int
        Number K of components. Default 10.
    spread : float
        Standard deviation of the random initial means. Default 1.
    """

    def __init__(self, latent_dim: int, components: int = 10, spread: float = 1.0) -> None:
        super().__init__(latent_dim)
        k = _count(components)
        self.components = k
        self.locs = nn.Parameter(float(spread) * torch.randn(k, self.latent_dim))
        self.raw_scales = nn.Parameter(torch.zeros(k, self.latent_dim))
        self.logits = nn.Parameter(torch.zeros(k))

    def forward(self) -> dist.Distribution:
        comp = dist.Normal(self.locs, F.softplus(self.raw_scales) + 1e-4).to_event(1)
        return dist.MixtureSameFamily(dist.Categorical(logits=self.logits), comp)


@PRIORS.register("vamp")
class VampPrior(Prior):
    """p(z) = (1/K) sum_k q(z | u_k) at K learnable pseudo-inputs u_k.

    Parameters
    ----------
    latent_dim : int
        Dimension of z.
    components : int
        Number K of pseudo-inputs. Default 50.
    init_scale : float
        Pseudo-inputs start as 0.5 + init_scale * N(0, 1). Default 0.05.
    """

    def __init__(self, latent_dim: int, components: int = 50, init_scale: float = 0.05) -> None:
        super().__init__(latent_dim)
        self.components = _count(components)
        self.init_scale = float(init_scale)
        self.pseudo_inputs: nn.Parameter | None = None
        self._encode = None

    def bind(self, module) -> None:
        """Attach to the VAE whose encoder defines the mixture components."""
        shape = (self.components, *module.data_shape)
        self.pseudo_inputs = nn.Parameter(0.5 + self.init_scale * torch.randn(shape))
        # a plain reference: the encoder belongs to the VAE module, not to the prior
        object.__setattr__(self, "_encode", module.encode)

    def forward(self) -> dist.Distribution:
        if self._encode is None:
            raise ConfigError("the vamp prior needs an encoder: use it inside a VAE")
        q = self._encode(self.pseudo_inputs)  # batch (K,), event (latent_dim,)
        mix = dist.Categorical(logits=torch.zeros(self.components, device=q.mean.device))
        return dist.MixtureSameFamily(mix, q)
