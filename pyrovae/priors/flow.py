r"""A normalizing-flow prior (Rezende & Mohamed 2015; Papamakarios et al. 2017).

p(z) is the density of z = T^{-1}(u), u ~ N(0, I), where T is a stack of
affine autoregressive transforms (MADE networks, Germain et al. 2015) with
permutations between them:

    log p(z) = log N(T(z); 0, I) + log |det dT/dz|.

T runs in the density direction (as in a masked autoregressive flow), so
log p(z), needed at every training step, takes one network pass per layer;
sampling, needed only to generate, inverts T dimension by dimension. Built
from Pyro's ``AffineAutoregressive`` transforms.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from pyro.distributions.transforms import AffineAutoregressive, Permute
from pyro.nn import AutoRegressiveNN
from torch import nn

from ..errors import ConfigError
from . import PRIORS
from .base import Prior


@PRIORS.register("flow")
class FlowPrior(Prior):
    """p(z) = N(0, I) pushed through a learnable masked autoregressive flow.

    Parameters
    ----------
    latent_dim : int
        Dimension of z (at least 2).
    flows : int
        Number of autoregressive layers. Default 2.
    hidden : int
        Width of each MADE network. Default 4 * latent_dim.
    """

    def __init__(self, latent_dim: int, flows: int = 2, hidden: int | None = None) -> None:
        super().__init__(latent_dim)
        if self.latent_dim < 2:
            raise ConfigError("the flow prior needs latent_dim >= 2")
        if int(flows) < 1:
            raise ConfigError(f"prior option flows must be >= 1; got {flows}")
        width = int(hidden or 4 * self.latent_dim)
        self.layers = nn.ModuleList(
            AffineAutoregressive(AutoRegressiveNN(self.latent_dim, [width]), stable=True)
            for _ in range(int(flows))
        )
        g = torch.Generator().manual_seed(0)
        self.register_buffer(
            "perms",
            torch.stack([torch.randperm(self.latent_dim, generator=g) for _ in range(int(flows))]),
        )
        self.register_buffer("loc", torch.zeros(self.latent_dim))
        self.register_buffer("scale", torch.ones(self.latent_dim))

    def forward(self) -> dist.Distribution:
        # density direction z -> u: layer_1, perm_1, ..., layer_L, perm_L;
        # the distribution's transforms map u -> z, so they are these inverses, reversed.
        to_u = []
        for layer, perm in zip(self.layers, self.perms, strict=True):
            to_u += [layer, Permute(perm)]
        to_z = [t.inv for t in reversed(to_u)]
        return dist.TransformedDistribution(dist.Normal(self.loc, self.scale).to_event(1), to_z)
