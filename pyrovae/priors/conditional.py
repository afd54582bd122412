r"""A conditional prior p(z | c) = N(mu(c), diag sigma(c)^2): the prior network of the
conditional VAE (Sohn, Lee & Yan 2015, Sec. 4).

``(mu, log-scale)`` come from a small MLP of the condition code ``c`` (one-hot label
or covariates, :mod:`pyrovae.models.conditions`); the scale is
``softplus(.) + 1e-4``. The prior is *conditional* (:attr:`Prior.conditional`):
``forward(c)`` takes the codes, shape ``(..., width)``, and returns a distribution of
batch shape ``c.shape[:-1]`` and event shape ``(latent_dim,)``. It binds to a family
that has a condition (``module.condition_dim > 0``: the ``cvae``); unconditional
families refuse it when they are built. At initialisation the output layer is zero,
so that p(z | c) = N(0, softplus(0) + 1e-4) for every c.

References
----------
Sohn, K., Lee, H. & Yan, X. (2015). Learning structured output representation using
deep conditional generative models. NeurIPS.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from . import PRIORS
from .base import Prior


@PRIORS.register("conditional")
class ConditionalNormalPrior(Prior):
    """p(z | c) = N(mu(c), diag sigma(c)^2) from an MLP of the condition code.

    Parameters
    ----------
    latent_dim : int
        Dimension of z.
    hidden : int
        Width of the network's hidden layer. Default 64.
    condition_dim : int, optional
        Width of the condition code; set from the model by :meth:`bind` when 0.
    """

    conditional = True

    def __init__(self, latent_dim: int, hidden: int = 64, condition_dim: int = 0) -> None:
        super().__init__(latent_dim)
        if isinstance(hidden, bool) or int(hidden) != hidden or int(hidden) < 1:
            raise ConfigError(f"prior option hidden must be a positive integer; got {hidden!r}")
        self.hidden = int(hidden)
        self.condition_dim = 0
        self.net: nn.Module | None = None
        if condition_dim:
            self._build(int(condition_dim))

    def _build(self, width: int) -> None:
        self.condition_dim = width
        out = nn.Linear(self.hidden, 2 * self.latent_dim)
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)
        self.net = nn.Sequential(nn.Linear(width, self.hidden), nn.Tanh(), out)

    def bind(self, module) -> None:
        """Read the condition width of the family that owns the prior; a family without
        a condition is refused with one line."""
        width = int(getattr(module, "condition_dim", 0) or 0)
        if width < 1:
            raise ConfigError(
                f"the conditional prior reads a condition, which the "
                f"{type(module).__name__.removesuffix('Module')} model has none of; use it "
                "with a conditional model (--model cvae)"
            )
        if self.net is None or self.condition_dim != width:
            self._build(width)

    def forward(self, c: torch.Tensor) -> dist.Distribution:
        if self.net is None:
            raise ConfigError("the conditional prior needs a condition width: use it in a cvae")
        if c.shape[-1] != self.condition_dim:
            raise ConfigError(
                f"the condition has width {c.shape[-1]}; the prior reads {self.condition_dim}"
            )
        loc, raw = self.net(c.float()).chunk(2, -1)
        return dist.Normal(loc, F.softplus(raw) + 1e-4).to_event(1)

    def reference(self) -> dist.Distribution:
        """p(z | c) at the condition code ``(1, 0, ..., 0)`` (the first class of a label)."""
        c = torch.zeros(self.condition_dim)
        c[0] = 1.0
        return self(c.to(self.net[0].weight))

    def sample(self, n: int, c: torch.Tensor | None = None) -> torch.Tensor:
        """``n`` codes given one condition code ``c`` (width ``condition_dim``; default
        the one of :meth:`reference`), shape ``(n, latent_dim)``."""
        with torch.no_grad():
            d = self.reference() if c is None else self(c)
            return d.sample((n,))
