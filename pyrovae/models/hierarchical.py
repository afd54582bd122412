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
the top layer.

With ``decoder_reads_top=True`` the decoder reads both layers, p(x | z1, z2), as
Tomczak & Welling's (2018, Sec. 3.2) does: its input, "the code" of
:meth:`~pyrovae.models.base.LatentModule.code_of`, is the concatenation [z1, z2], so
``encode``, ``sample_latent`` and ``prior_program`` return codes of size
``latent_dim + top_dim``. ``encode`` then describes the two layers as independent,
[q(z1 | x, z2 = E[z2|x]), q(z2|x)] (or [q(z1|x), q(z2 | z1 = E[z1|x])] bottom-up):
the point summary that reconstructions use, not the guide's joint.

Both latent sites carry ``poutine.scale(beta)`` in model and guide, so the
objective is E_q[log p(x|z1)] - beta (E_q[log q(z1, z2|x)] - E_q[log p(z1|z2) p(z2)]).

``encode(x)`` returns a distribution over z1, the code the decoder reads: the guide's
q(z1|x) in the bottom-up order, and q(z1 | x, z2 = E[z2|x]) with ``top_from_x``, which
is *not* the guide's marginal q(z1|x) = E_{q(z2|x)} q(z1|x, z2) (that is a continuous
mixture, wider than any one component). Posterior analyses use the guide's joint
instead: ``posterior_sample`` draws the first layer and then the second given it, as
the guide does; ``posterior_moments`` gives the first layer's moments in closed form
and the second layer's by Rao-Blackwellized Monte Carlo, the law of total variance
over draws of the first layer,

    E[z] = E_first[m(first)],   Var[z] = E_first[s(first)^2] + Var_first[m(first)],

where m and s are the Gaussian conditional's mean and sd; ``posterior_log_prob`` is
log q(first|x) + log q(second|x, first).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions import Distribution
from torch import nn
from torch.nn import functional as F

from .. import sites
from ..config import parse_bool
from ..data.batch import Batch, as_batch
from ..errors import ConfigError
from ..guides.normal import MIN_SCALE
from ..nets.base import mlp
from . import MODELS
from .base import MOMENT_DRAWS, LatentModule, ModuleSpec, Moments, distribution_moments

#: Draws x rows of the second layer evaluated at once by ``posterior_moments``.
MOMENT_CHUNK_ROWS = 2**15

#: One layer of the guide: its site name and its distribution.
Layer = tuple[str, Distribution]


class _Concatenated(dist.TorchDistribution):
    """Independent distributions over consecutive blocks of one event vector: the
    product ``parts[0] x parts[1] x ...`` over their concatenation (equal batch shapes,
    one event dimension each)."""

    arg_constraints: dict = {}
    has_rsample = True

    def __init__(self, parts: list[Distribution]) -> None:
        self.parts = parts
        self.sizes = [int(p.event_shape[-1]) for p in parts]
        batch_shape = torch.broadcast_shapes(*(p.batch_shape for p in parts))
        super().__init__(batch_shape, torch.Size([sum(self.sizes)]), validate_args=False)

    def _cat(self, tensors) -> torch.Tensor:
        shape = torch.broadcast_shapes(*(t.shape[:-1] for t in tensors))
        return torch.cat([t.expand(*shape, t.shape[-1]) for t in tensors], dim=-1)

    @property
    def mean(self) -> torch.Tensor:
        return self._cat([p.mean for p in self.parts])

    @property
    def variance(self) -> torch.Tensor:
        return self._cat([p.variance for p in self.parts])

    def sample(self, sample_shape=()) -> torch.Tensor:
        return self._cat([p.sample(sample_shape) for p in self.parts])

    def rsample(self, sample_shape=()) -> torch.Tensor:
        return self._cat([p.rsample(sample_shape) for p in self.parts])

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        blocks = value.split(self.sizes, dim=-1)
        return sum(p.log_prob(v) for p, v in zip(self.parts, blocks, strict=True))


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
    False) and ``decoder_reads_top`` (the decoder reads [z1, z2], not z1 alone; default
    False). The registered guide component is q(z1|x), or q(z2|x) with ``top_from_x``.
    """

    @classmethod
    def code_size(cls, spec: ModuleSpec) -> int:
        """``latent_dim``, plus ``top_dim`` when the decoder also reads z2."""
        opts = spec.model_options
        if not parse_bool(opts.get("decoder_reads_top", False)):
            return int(spec.latent_dim)
        return int(spec.latent_dim) + _top_dim(spec)

    def __init__(self, spec: ModuleSpec) -> None:
        super().__init__(spec)
        opts = dict(spec.model_options)
        self.top_dim = _top_dim(spec)
        opts.pop("top_dim", None)
        self.decoder_reads_top = parse_bool(opts.pop("decoder_reads_top", False))
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

    # z1's model parent z2 descends from z1 in the guide: not mean-field
    mean_field = False

    @property
    def has_latent_sites(self) -> bool:
        return True

    def model(self, batch: Batch, beta: float = 1.0) -> None:
        batch = as_batch(batch)
        x = self.observed(batch)
        with self.weight_sites(batch, beta), pyro.plate(sites.DATA_PLATE, x.shape[0]):
            with poutine.scale(scale=beta):
                z2 = pyro.sample(sites.LATENT_TOP, self.prior())
                z1 = pyro.sample(sites.LATENT, self.p_z1(z2))
            px = self.decode(self._code(z1, z2))
            pyro.sample(sites.OBS, self.observe(px, batch.mask), obs=x)

    def _code(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """What the decoder reads: z1, or [z1, z2] with ``decoder_reads_top``."""
        if not self.decoder_reads_top:
            return z1
        shape = torch.broadcast_shapes(z1.shape[:-1], z2.shape[:-1])
        return torch.cat([z1.expand(*shape, z1.shape[-1]), z2.expand(*shape, z2.shape[-1])], -1)

    def code_of(self, draws: dict[str, torch.Tensor]) -> torch.Tensor:
        """z1, or [z1, z2] with ``decoder_reads_top``, from draws of both sites."""
        return self._code(draws[sites.LATENT], draws[sites.LATENT_TOP])

    def guide(self, batch: Batch, beta: float = 1.0) -> None:
        batch = as_batch(batch)
        x = self.observed(batch)
        (first, q_first), (second, q_second) = self._guide_layers(x, batch.mask)
        with self.weight_sites(batch, beta, guide=True), pyro.plate(sites.DATA_PLATE, x.shape[0]):
            with poutine.scale(scale=beta):
                z = pyro.sample(first, q_first)
                pyro.sample(second, q_second(z))

    def _guide_layers(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[Layer, tuple[str, Callable[[torch.Tensor], Distribution]]]:
        """The guide in its sampling order: (site, q(first|x)) and (site, the map
        first -> q(second | x, first)); x observed where ``mask`` is ``True``."""
        h = self.features(x, mask)
        if self.top_from_x:
            return (sites.LATENT_TOP, self.guide_head(h)), (sites.LATENT, partial(self._q_z1, h))
        return (sites.LATENT, self.guide_head(h)), (sites.LATENT_TOP, self.q_z2)

    def _q_z1(self, h: torch.Tensor, z2: torch.Tensor) -> Distribution:
        """q(z1 | h(x), z2), broadcasting h and z2 against each other's leading dimensions."""
        shape = torch.broadcast_shapes(h.shape[:-1], z2.shape[:-1])
        h, z2 = h.expand(*shape, h.shape[-1]), z2.expand(*shape, z2.shape[-1])
        return self.q_z1(torch.cat([h, z2], dim=-1))

    # -- the guide's joint posterior (see the module docstring) --------------------------
    def posterior_sample(
        self, x: torch.Tensor, n: int, mask: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """``n`` draws of both layers per row, ``(n, B, dim)`` each, in the guide's order."""
        (first, q_first), (second, q_second) = self._guide_layers(x, mask)
        z = q_first.sample((int(n),))
        return {first: z, second: q_second(z).sample()}

    def posterior_moments(
        self, x: torch.Tensor, n: int = MOMENT_DRAWS, mask: torch.Tensor | None = None
    ) -> dict[str, Moments]:
        """Both layers' means and sds: the first layer's from its distribution, the
        second's by the law of total variance over ``n`` draws of the first (in chunks
        of at most :data:`MOMENT_CHUNK_ROWS` draws x rows, summed in float64)."""
        n = int(n)
        if n < 1:
            raise ConfigError(f"posterior moments need n >= 1 draws; got {n}")
        (first, q_first), (second, q_second) = self._guide_layers(x, mask)
        per_chunk = max(1, MOMENT_CHUNK_ROWS // max(1, x.shape[0]))
        s_m = s_mm = s_v = 0.0
        done, dtype = 0, None
        while done < n:
            k = min(per_chunk, n - done)
            cond = q_second(q_first.sample((k,)))  # batch (k, B)
            dtype = cond.mean.dtype
            m = cond.mean.double()
            s_m, s_mm = s_m + m.sum(0), s_mm + (m * m).sum(0)
            s_v = s_v + cond.variance.double().sum(0)
            done += k
        mean = s_m / n
        var_m = (s_mm - n * mean * mean).clamp_min(0) / (n - 1) if n > 1 else 0 * mean
        sd = (s_v / n + var_m).sqrt()
        second_moments = Moments(mean.to(dtype), sd.to(dtype))
        return {first: distribution_moments(q_first, n), second: second_moments}

    def posterior_log_prob(
        self, x: torch.Tensor, draws: dict[str, torch.Tensor], mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """log q(first|x) + log q(second|x, first) at ``draws``."""
        (first, q_first), (second, q_second) = self._guide_layers(x, mask)
        z = draws[first]
        return q_first.log_prob(z) + q_second(z).log_prob(draws[second])

    def prior_encode(self, x: torch.Tensor) -> Distribution:
        """q(z2|x): the amortized posterior over the prior's space (``top_from_x`` only)."""
        if not self.top_from_x:
            raise ConfigError(
                "this hvae's guide has no q(z2|x) (it draws z2 from z1); "
                "set top_from_x to use a prior built from the guide on the top layer"
            )
        return self.guide_head(self.features(x))

    def encode(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> Distribution:
        """q(z1|x); with ``top_from_x``, q(z1 | x, z2 = E[z2|x]) (not the guide's marginal
        over z1: see :meth:`posterior_sample`); x observed where ``mask`` is ``True``.
        With ``decoder_reads_top``, a distribution over the code [z1, z2] (see the module
        docstring)."""
        h = self.features(x, mask)
        if self.top_from_x:
            q_z2 = self.guide_head(h)
            q_z1 = self._q_z1(h, q_z2.mean)
        else:
            q_z1 = self.guide_head(h)
            if self.decoder_reads_top:
                q_z2 = self.q_z2(q_z1.mean)
        if not self.decoder_reads_top:
            return q_z1
        return _Concatenated([q_z1, q_z2])

    def prior_program(self, prefix: str) -> torch.Tensor:
        """z2 ~ p(z2) at ``f"{prefix}_z2"``, then z1 ~ p(z1|z2) at ``f"{prefix}_z"``; returns
        the code (z1, or [z1, z2]; see :meth:`LatentModule.prior_program`)."""
        z2 = pyro.sample(f"{prefix}_{sites.LATENT_TOP}", self.prior())
        return self._code(pyro.sample(f"{prefix}_{sites.LATENT}", self.p_z1(z2)), z2)

    def sample_latent(self, n: int) -> torch.Tensor:
        """The code from the generative hierarchy: z2 ~ p(z2), z1 ~ p(z1|z2); z1, or
        [z1, z2] with ``decoder_reads_top``."""
        z2 = self.prior().sample((n,))
        return self._code(self.p_z1(z2).sample(), z2)


def _top_dim(spec: ModuleSpec) -> int:
    """The size of z2: ``top_dim``, or max(2, latent_dim // 2) when not given."""
    return int(spec.model_options.get("top_dim", None) or max(2, int(spec.latent_dim) // 2))
