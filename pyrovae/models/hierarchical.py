r"""A hierarchical VAE with two stochastic layers (Burda et al. 2016; Sonderby et al. 2016).

Model::

    for n in plate("data"):
        z2_n ~ p(z2)                              # the prior component, top_dim
        z1_n ~ N(m(z2_n), diag s(z2_n)^2)         # learned conditional, latent_dim
        x_n  ~ p(x | decoder(z1_n))

Guide (bottom-up, the same dependency graph reversed)::

    for n in plate("data"):
        z1_n ~ q(z1 | encoder(x_n))               # the guide component
        z2_n ~ N(m'(z1_n), diag s'(z1_n)^2)

With ``top_from_x=True`` the guide reads the data at both layers, z2 first
(Tomczak & Welling 2018, Sec. 3.2, "HVAE")::

    for n in plate("data"):
        z2_n ~ q(z2 | encoder(x_n))               # the guide component, top_dim
        z1_n ~ N(m''(h(x_n), z2_n), diag s''(h(x_n), z2_n)^2)

so q(z2|x) is an amortized posterior over the prior's own space, and a prior
built from the guide (the VampPrior, p(z2) = (1/K) sum_k q(z2|u_k)) can sit on
the top layer. (Tomczak & Welling's decoder also reads z2, p(x|z1, z2); here it
reads z1 only, as in the bottom-up form.) ``encode(x)`` is then
q(z1 | x, z2 = E[z2|x]).

Both latent sites carry ``poutine.scale(beta)`` in model and guide, so the
objective is E_q[log p(x|z1)] - beta (E_q[log q(z1, z2|x)] - E_q[log p(z1|z2) p(z2)]).
``encode(x)`` returns q(z1|x), the code the decoder reads.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions import Distribution
from torch import nn
from torch.nn import functional as F

from .. import sites
from ..config import parse_bool
from ..errors import ConfigError
from ..guides.normal import MIN_SCALE
from ..nets.base import mlp
from . import MODELS
from .base import LatentModule, ModuleSpec


class _GaussianLayer(nn.Module):
    """z_in -> N(m(z_in), diag s(z_in)^2) through ``depth`` hidden layers of width
    ``hidden`` (tanh, or gated linear units with ``gated``)."""

    def __init__(
        self, d_in: int, d_out: int, hidden: int, depth: int = 1, gated: bool = False
    ) -> None:
        super().__init__()
        sizes = [d_in] + [hidden] * depth + [2 * d_out]
        self.net = mlp(sizes, "tanh", final_activation=False, gated=gated)

    def forward(self, z: torch.Tensor) -> Distribution:
        loc, raw = self.net(z).chunk(2, dim=-1)
        return dist.Normal(loc, F.softplus(raw) + MIN_SCALE, validate_args=False).to_event(1)


@MODELS.register("hvae")
class HierarchicalVAEModule(LatentModule):
    """Two stochastic layers z2 -> z1 -> x.

    ``spec.model_options``: ``top_dim`` (size of z2, default max(2, latent_dim // 2)),
    ``layer_hidden`` (width of the z1 <-> z2 networks, default 64), ``layer_depth``
    (their number of hidden layers, default 1), ``layer_gated`` (gated linear units
    instead of tanh in them, as Tomczak & Welling's; default False) and
    ``top_from_x`` (guide q(z2|x) q(z1|x, z2) instead of q(z1|x) q(z2|z1); default
    False). The registered guide component is q(z1|x), or q(z2|x) with ``top_from_x``.
    """

    def __init__(self, spec: ModuleSpec) -> None:
        super().__init__(spec)
        opts = dict(spec.model_options)
        self.top_dim = int(opts.pop("top_dim", None) or max(2, self.latent_dim // 2))
        hidden = int(opts.pop("layer_hidden", 64))
        depth = int(opts.pop("layer_depth", 1))
        gated = parse_bool(opts.pop("layer_gated", False))
        self.top_from_x = parse_bool(opts.pop("top_from_x", False))
        if opts:
            raise ConfigError(f"unknown hvae option(s): {', '.join(sorted(opts))}")
        if self.top_dim < 1 or hidden < 1 or depth < 1:
            raise ConfigError("hvae top_dim, layer_hidden and layer_depth must be positive")
        self.p_z1 = _GaussianLayer(self.top_dim, self.latent_dim, hidden, depth, gated)
        if self.top_from_x:
            # guide head over z2 from h(x); q(z1 | h(x), z2)
            self._build_prior_and_guide(self.top_dim, guide_dim=self.top_dim)
            d_in = self.encoder.out_features + self.top_dim
            self.q_z1 = _GaussianLayer(d_in, self.latent_dim, hidden, depth, gated)
        else:
            self._build_prior_and_guide(self.top_dim)
            self.q_z2 = _GaussianLayer(self.latent_dim, self.top_dim, hidden, depth, gated)

    #: the guide's own parts (everything else belongs to p(x, z))
    guide_parts = ("encoder", "guide_head", "q_z1", "q_z2")

    # z1's model parent z2 descends from z1 in the guide: not mean-field
    mean_field = False

    @property
    def has_latent_sites(self) -> bool:
        return True

    def model(self, x: torch.Tensor) -> None:
        with pyro.plate(sites.DATA_PLATE, x.shape[0]):
            with poutine.scale(scale=self.beta):
                z2 = pyro.sample(sites.LATENT_TOP, self.prior())
                z1 = pyro.sample(sites.LATENT, self.p_z1(z2))
            pyro.sample(sites.OBS, self.decode(z1), obs=x)

    def guide(self, x: torch.Tensor) -> None:
        with pyro.plate(sites.DATA_PLATE, x.shape[0]):
            with poutine.scale(scale=self.beta):
                if self.top_from_x:
                    h = self.encoder(x)
                    z2 = pyro.sample(sites.LATENT_TOP, self.guide_head(h))
                    pyro.sample(sites.LATENT, self._q_z1(h, z2))
                else:
                    z1 = pyro.sample(sites.LATENT, self.encode(x))
                    pyro.sample(sites.LATENT_TOP, self.q_z2(z1))

    def _q_z1(self, h: torch.Tensor, z2: torch.Tensor) -> Distribution:
        """q(z1 | h(x), z2), broadcasting h over z2's leading sample dimensions."""
        h = h.expand(*z2.shape[:-1], h.shape[-1])
        return self.q_z1(torch.cat([h, z2], dim=-1))

    def prior_encode(self, x: torch.Tensor) -> Distribution:
        """q(z2|x): the amortized posterior over the prior's space (``top_from_x`` only)."""
        if not self.top_from_x:
            raise ConfigError(
                "this hvae's guide has no q(z2|x) (it draws z2 from z1); "
                "set top_from_x to use a prior built from the guide on the top layer"
            )
        return self.guide_head(self.encoder(x))

    def encode(self, x: torch.Tensor) -> Distribution:
        """q(z1|x); with ``top_from_x``, q(z1 | x, z2 = E[z2|x])."""
        h = self.encoder(x)
        if self.top_from_x:
            return self._q_z1(h, self.guide_head(h).mean)
        return self.guide_head(h)

    def sample_latent(self, n: int) -> torch.Tensor:
        """z1 from the generative hierarchy: z2 ~ p(z2), z1 ~ p(z1|z2)."""
        z2 = self.prior().sample((n,))
        return self.p_z1(z2).sample()
