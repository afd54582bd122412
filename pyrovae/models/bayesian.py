r"""Bayesian decoder weights: a posterior over the generative network.

A model family with ``spec.decoder_weights`` set treats the parameters θ of its decoder
(all of them, or those of its last layer) as global latent variables (Kingma & Welling
2014, App. F, "full variational Bayes")::

    θ_j ~ N(0, s^2)                          # every weight and bias, outside the data plate
    for n in plate("data"):
        z_n ~ p(z)
        x_n ~ p(x | decoder(z_n; θ))

with the mean-field guide q(θ) = prod_j N(θ_j | μ_j, σ_j^2), σ_j = softplus(g ρ_j) (Blundell
et al. 2015, "Bayes by backprop"), next to the amortized q(z|x). The gain g =
:data:`SCALE_GAIN` preconditions Adam, whose steps have about the learning rate's size
in every parameter: a step of 1e-3 in ρ would change log σ by 1e-3, and the scales
could not leave their small initial value within the few hundred steps that a small
data set gives; with g = 10 a step moves log σ by about 1e-2. The means μ *are* the
decoder's own parameters (initialised by its deterministic initialisation, so decoding
at the posterior mean is the plain decoder); the scales start at :data:`INIT_SCALE`.
One draw of θ per program run is shared by the rows of the minibatch; the decoder body
runs with it through ``torch.func.functional_call``, so one network serves the point
decoder, the mean and every draw.

Scaling. The weight sites appear once in the full-data ELBO

.. math::  \sum_n \big(E[\log p(x_n|z_n,θ)] - \mathrm{KL}(q(z_n|x_n) \| p(z))\big)
           - \mathrm{KL}(q(θ) \| p(θ)) ,

so they carry ``poutine.scale(batch.global_scale)`` = B / N in the model and the guide
(:mod:`pyrovae.data.batch`): the per-data-point loss of a minibatch is then an unbiased
estimate of the full-data objective divided by N. β scales the z sites only, unless
``beta_weights`` is set, when it also multiplies the weight sites.

Rank-1 multiplicative posterior (``posterior="rank1"``; Dusenberry et al. 2020). With
many weights per data point the mean-field posterior above stays close to its prior (the
weight KL, a sum over every weight, outweighs the data), and its draws add more noise to
the decoder than the data can afford. The rank-1 posterior puts the uncertainty in two
vectors per weight matrix instead: each random weight matrix W (out × in, and any
trailing kernel dimensions) is

.. math::  W = \bar W \circ (r s^\top), \qquad r_i, s_j \sim N(1, s_p^2)
           \text{ a priori}, \quad q(r) q(s) \text{ mean-field Normal},

with \bar W a point estimate (the decoder's own parameter, fitted by the same ELBO, a
type-II maximum-likelihood hyperparameter) and the biases point estimates too; the
prior scale s_p is ``prior_scale``. The random scalars number out + in per layer, not
out × in, so the KL stays small and the draws perturb each unit's input and output
gains, not every weight independently (a multiplicative-noise ensemble; Dusenberry et al.
report calibration and log-likelihood gains over both deterministic and mean-field
networks). The weight sites are ``theta.<parameter>.r`` and ``theta.<parameter>.s``;
a draw θ (:meth:`DecoderWeights.draw`) is the composed weights, and the posterior mean of
the composed weight is \bar W \circ (E[r] E[s]^\top) (r and s independent).

Rank-1 multiplicative noise (``posterior="rank1-noise"``). The rank-1 family with the
factor means held at the prior's mean, q(r_i) = N(1, σ_i²) and q(s_j) = N(1, τ_j²): each
draw multiplies the rows and columns of W̄ by Gaussian noise whose per-unit scales are
learned, so the posterior mean of the composed weights is W̄ itself. This is
variational Gaussian dropout with learned per-unit rates (Kingma, Salimans & Welling
2015, applied to a unit's inputs and outputs), and its KL per factor,
log(s_p/σ) + σ²/(2 s_p²) − 1/2, prices the noise alone: the factor means of the rank-1
family add out + in free gains to the decoder, which a small data set overfits.

Mixture of rank-1 components (``posterior="rank1-mixture"``; Dusenberry et al. 2020,
Sec. 3.2). K sets of factors (r_k, s_k) share W̄ and the biases, and q(θ) is their
uniform mixture, (1/K) Σ_k q_k(θ): a posterior with K modes, like a deep ensemble whose
members share most of their weights (Lakshminarayanan et al. 2017). The mixture's
entropy has no closed form; the objective uses the bound

.. math::  \mathrm{KL}\Big(\tfrac1K \sum_k q_k \,\Big\|\, p\Big)
           \le \tfrac1K \sum_k \mathrm{KL}(q_k \| p)

(joint convexity of the KL), so E_k[ELBO_k], estimated by drawing k uniformly in each
run of the guide and θ from q_k, is a lower bound on the mixture's ELBO and on
log p(x). The guide records k as a point mass (site ``theta_component``, log-density 0, absent
from the model), so the weight term of a run is log q_k(θ) − log p(θ), whose
expectation is the averaged KL, and a replayed guide uses the same k. A draw θ ~ q(θ) picks k
uniformly; the posterior mean of the composed weight is W̄ ∘ (1/K) Σ_k E[r_k] E[s_k]ᵀ.

Conditioning on θ. Inside :meth:`DecoderWeights.fixed` the programs leave the weight
sites out and decode with the given θ (or the posterior mean): they are then the
point-decoder programs at that θ, which is how the predictive log-likelihood
(:func:`pyrovae.inference.bayes.predictive_log_likelihood`) and the epistemic/aleatoric
split score p(x | θ_s) for each draw θ_s.

References
----------
Kingma, D. P. & Welling, M. (2014). Auto-encoding variational Bayes. ICLR (App. F).
Blundell, C., Cornebise, J., Kavukcuoglu, K. & Wierstra, D. (2015). Weight uncertainty in
neural networks. ICML.
Dusenberry, M. W., Jerfel, G., Wen, Y., Ma, Y.-A., Snoek, J., Heller, K.,
Lakshminarayanan, B. & Tran, D. (2020). Efficient and scalable Bayesian neural nets with
rank-1 factors. ICML.
Kingma, D. P., Salimans, T. & Welling, M. (2015). Variational dropout and the local
reparameterization trick. NeurIPS.
Lakshminarayanan, B., Pritzel, A. & Blundell, C. (2017). Simple and scalable predictive
uncertainty estimation using deep ensembles. NeurIPS.
Riesselman, A. J., Ingraham, J. B. & Marks, D. S. (2018). Deep generative models of
genetic variation capture the effects of mutations. Nature Methods (DeepSequence).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from torch import nn
from torch.nn import functional as F

from .. import sites
from ..config import BAYESIAN_LAYERS, parse_bool
from ..data.batch import Batch, as_batch
from ..errors import ConfigError
from ..registry import Registry

#: Initial standard deviation σ of every weight's guide (small: training starts near
#: the point decoder).
INIT_SCALE = 1e-3
#: Smallest guide standard deviation (added to the softplus).
MIN_SCALE = 1e-8
#: Gain g of the guide's scale parameters, σ = softplus(g ρ) (module docstring).
SCALE_GAIN = 10.0
#: Default prior standard deviation s.
PRIOR_SCALE = 1.0
#: Number K of rank-1 components of the ``"rank1-mixture"`` posterior (Dusenberry et al.
#: use 4 for their ensembles).
MIXTURE_COMPONENTS = 4
#: Standard deviation of the initial factor means of a mixture's components, drawn from
#: N(1, sd²) (Dusenberry et al.'s initialisation of the means).
MIXTURE_LOC_SD = 0.5
#: Which decoder parameters are random: every layer's, or the last layer's only.
LAYERS = BAYESIAN_LAYERS

#: name -> the class of a posterior family over the decoder's weights (a
#: :class:`DecoderWeights` subclass): ``"meanfield"``, ``"rank1"``, ``"rank1-noise"`` and
#: ``"rank1-mixture"``.
WEIGHT_POSTERIORS: Registry = Registry("weight posterior")
#: The default weight posterior.
DEFAULT_POSTERIOR = "meanfield"


def _inverse_softplus(y: float) -> float:
    return y + math.log(-math.expm1(-y))


def select_parameters(decoder: nn.Module, layers: str) -> list[str]:
    """Names of ``decoder``'s parameters made random: all of them (``"all"``), or those
    of the last submodule that owns parameters directly (``"last"``: the output layer of
    the MLP, gated and linear decoders, the last transposed convolution of the conv one)."""
    if layers not in LAYERS:
        raise ConfigError(f"bayesian_layers must be one of {', '.join(LAYERS)}; got {layers!r}")
    names = [name for name, _ in decoder.named_parameters()]
    if layers == "all":
        return names
    owners = [
        m
        for m, mod in decoder.named_modules()
        if next(mod.parameters(recurse=False), None) is not None
    ]
    last = owners[-1]
    prefix = f"{last}." if last else ""
    return [n for n in names if n.startswith(prefix) and "." not in n[len(prefix) :]]


@WEIGHT_POSTERIORS.register("meanfield")
class DecoderWeights(nn.Module):
    """The guide's scales of the random decoder parameters, the weight sites of both
    programs, and the decoder run at the current θ (see the module docstring).

    Parameters
    ----------
    decoder : nn.Module
        The family's decoder body (owned by the family; not registered here).
    layers : {"all", "last"}
        Which parameters are random.
    prior_scale : float
        s of the prior N(0, s^2) on each random parameter.
    beta_weights : bool
        Whether β also scales the weight sites.
    init_scale : float
        Initial σ of the guide.
    """

    def __init__(
        self,
        decoder: nn.Module,
        layers: str = "all",
        prior_scale: float = PRIOR_SCALE,
        beta_weights: bool = False,
        init_scale: float = INIT_SCALE,
    ) -> None:
        super().__init__()
        prior_scale, init_scale = float(prior_scale), float(init_scale)
        if not (math.isfinite(prior_scale) and prior_scale > 0):
            raise ConfigError(f"decoder_prior_scale must be > 0; got {prior_scale!r}")
        if not (math.isfinite(init_scale) and init_scale > 0):
            raise ConfigError(f"the decoder weights' init_scale must be > 0; got {init_scale!r}")
        self.__dict__["decoder"] = decoder  # a reference: the family registers the body
        self.layers = layers
        self.names = select_parameters(decoder, layers)
        self.prior_scale = prior_scale
        self.init_scale = init_scale
        self.beta_weights = parse_bool(beta_weights)
        params = dict(decoder.named_parameters())
        raw = _inverse_softplus(init_scale) / SCALE_GAIN
        self.raw_scale = nn.ParameterDict(
            {self._key(n): nn.Parameter(torch.full_like(params[n], raw)) for n in self.names}
        )
        # ("sample", None): the programs draw θ; ("fixed", θ or None for the mean): they
        # do not, and the decoder runs at θ; ("use", θ): inside a program, after the draw
        self._state: tuple[str, dict | None] = ("sample", None)

    @staticmethod
    def _key(name: str) -> str:
        return name.replace(".", "__")

    # -- the guide's distributions --------------------------------------------------------
    def locs(self) -> dict[str, torch.Tensor]:
        """The guide means μ: the decoder's own parameters."""
        params = dict(self.decoder.named_parameters())
        return {n: params[n] for n in self.names}

    def scales(self) -> dict[str, torch.Tensor]:
        """The guide standard deviations σ = softplus(g ρ) + :data:`MIN_SCALE`."""
        return {
            n: F.softplus(SCALE_GAIN * self.raw_scale[self._key(n)]) + MIN_SCALE for n in self.names
        }

    def guide_distributions(self) -> dict[str, dist.Distribution]:
        """q(θ_j) for each random parameter (event shape the parameter's shape)."""
        scales = self.scales()
        return {
            n: dist.Normal(loc, scales[n]).to_event(loc.dim()) for n, loc in self.locs().items()
        }

    def prior_distributions(self) -> dict[str, dist.Distribution]:
        """p(θ_j) = N(0, s^2) for each random parameter."""
        out = {}
        for n, loc in self.locs().items():
            zero = torch.zeros((), dtype=loc.dtype, device=loc.device)
            d = dist.Normal(zero, zero + self.prior_scale).expand(loc.shape)
            out[n] = d.to_event(loc.dim())
        return out

    def kl(self) -> torch.Tensor:
        """KL(q(θ) || p(θ)) in closed form (nats, summed over every random parameter)."""
        prior = self.prior_distributions()
        return sum(
            torch.distributions.kl_divergence(q, prior[n])
            for n, q in self.guide_distributions().items()
        )

    def num_random(self) -> int:
        """Number of random scalars in θ."""
        return sum(p.numel() for p in self.locs().values())

    def site_names(self) -> dict[str, str]:
        """Key of :meth:`guide_distributions` -> the name of its sample site."""
        return {n: sites.decoder_weight(n) for n in self.guide_distributions()}

    def compose(self, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The decoder's parameters (name -> tensor) that draws of the random variables
        (keyed as :meth:`guide_distributions`) give: here the draws themselves."""
        return values

    def mean_parameters(self) -> dict[str, torch.Tensor] | None:
        """The decoder's parameters at the posterior mean (None: its own parameters)."""
        return None

    @torch.no_grad()
    def draw(self) -> dict[str, torch.Tensor]:
        """One draw θ ~ q(θ): the decoder's random parameters (name -> tensor)."""
        return self.compose({n: q.sample() for n, q in self.guide_distributions().items()})

    def draws(self, n: int) -> Iterator[dict[str, torch.Tensor]]:
        """``n`` independent draws of θ from q(θ)."""
        for _ in range(int(n)):
            yield self.draw()

    # -- the programs -----------------------------------------------------------------------
    @contextlib.contextmanager
    def fixed(self, theta: dict[str, torch.Tensor] | None = None):
        """Condition the programs on θ = ``theta`` (None: the guide's mean): they leave
        the weight sites out, and the decoder runs at θ."""
        saved = self._state
        self._state = ("fixed", theta)
        try:
            yield self
        finally:
            self._state = saved

    @property
    def is_fixed(self) -> bool:
        """Whether the programs are conditioned on a θ (:meth:`fixed`)."""
        return self._state[0] == "fixed"

    @contextlib.contextmanager
    def sites(self, batch: Batch | torch.Tensor, beta: float = 1.0, guide: bool = False):
        """The weight sites of the model (prior) or the guide (q(θ)), scaled by
        ``batch.global_scale`` (times ``beta`` with ``beta_weights``); inside the block
        the decoder runs at the drawn θ. Under :meth:`fixed`, no sites."""
        if self.is_fixed:
            yield
            return
        batch = as_batch(batch)
        scale = batch.global_scale * (float(beta) if self.beta_weights else 1.0)
        fns = self.guide_distributions() if guide else self.prior_distributions()
        names = self.site_names()
        with poutine.scale(scale=scale):
            theta = self.compose({n: pyro.sample(names[n], fn) for n, fn in fns.items()})
        saved = self._state
        self._state = ("use", theta)
        try:
            yield
        finally:
            self._state = saved

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder body at the current θ (the mean outside the programs)."""
        theta = self._state[1]
        if theta is None:
            theta = self.mean_parameters()
            if theta is None:
                return self.decoder(z)
        return torch.func.functional_call(self.decoder, theta, (z,), strict=False)

    def extra_repr(self) -> str:
        return (
            f"layers={self.layers!r}, prior_scale={self.prior_scale}, "
            f"beta_weights={self.beta_weights}, random={self.num_random()}"
        )


@WEIGHT_POSTERIORS.register("rank1")
class RankOneWeights(DecoderWeights):
    """W = W̄ ∘ (r sᵀ) for each random weight matrix, r and s random with N(1, s_p²)
    priors and mean-field Normal guides, W̄ and the biases point estimates (module
    docstring). Same parameters as :class:`DecoderWeights`; its ``layers`` select the
    matrices (non-empty parameters of two or more dimensions) made random."""

    def __init__(self, decoder: nn.Module, *args, **kwargs) -> None:
        super().__init__(decoder, *args, **kwargs)
        params = dict(decoder.named_parameters())
        self.names = [n for n in self.names if params[n].dim() >= 2 and params[n].numel() > 0]
        if not self.names:
            raise ConfigError("the rank-1 weight posterior found no weight matrix to make random")
        raw = _inverse_softplus(self.init_scale) / SCALE_GAIN
        self.raw_scale = nn.ParameterDict()
        self.factor_loc = nn.ParameterDict()
        for n in self.names:
            w = params[n]
            for part, size in (("r", w.shape[0]), ("s", w.shape[1])):
                key = self._key(f"{n}.{part}")
                loc = self._initial_factor_means(size, w.dtype)
                self.factor_loc[key] = nn.Parameter(loc)
                self.raw_scale[key] = nn.Parameter(torch.full_like(loc, raw))

    def _initial_factor_means(self, size: int, dtype: torch.dtype) -> torch.Tensor:
        """The guide means of one factor at initialisation: ones (the prior's mean)."""
        return torch.ones(size, dtype=dtype)

    def _factors(self) -> list[str]:
        return [f"{n}.{part}" for n in self.names for part in ("r", "s")]

    def locs(self) -> dict[str, torch.Tensor]:
        """The guide means of the factors r and s (keys ``<parameter>.r`` / ``.s``)."""
        return {f: self.factor_loc[self._key(f)] for f in self._factors()}

    def scales(self) -> dict[str, torch.Tensor]:
        return {
            f: F.softplus(SCALE_GAIN * self.raw_scale[self._key(f)]) + MIN_SCALE
            for f in self._factors()
        }

    def prior_distributions(self) -> dict[str, dist.Distribution]:
        """p(r_i) = p(s_j) = N(1, s_p²) for each factor."""
        out = {}
        for f, loc in self.locs().items():
            one = torch.ones((), dtype=loc.dtype, device=loc.device)
            out[f] = dist.Normal(one, one * self.prior_scale).expand(loc.shape).to_event(1)
        return out

    def compose(self, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """W = W̄ ∘ (r sᵀ) (broadcast over kernel dimensions) for each random matrix."""
        params = dict(self.decoder.named_parameters())
        out = {}
        for n in self.names:
            w = params[n]
            r, s = values[f"{n}.r"], values[f"{n}.s"]
            gain = r.reshape(-1, 1, *([1] * (w.dim() - 2))) * s.reshape(
                1, -1, *([1] * (w.dim() - 2))
            )
            out[n] = w * gain
        return out

    def mean_parameters(self) -> dict[str, torch.Tensor]:
        """W̄ ∘ (E[r] E[s]ᵀ): the mean of the composed weights (r, s independent)."""
        return self.compose(self.locs())


@WEIGHT_POSTERIORS.register("rank1-noise")
class RankOneNoiseWeights(RankOneWeights):
    """The rank-1 posterior with its factor means held at the prior mean 1: q(r_i) =
    N(1, σ_i²), q(s_j) = N(1, τ_j²), only the scales learned (module docstring,
    "Rank-1 multiplicative noise"). The posterior mean of the composed weights is W̄:
    the mean decoder is the plain decoder. Same parameters as :class:`DecoderWeights`."""

    def __init__(self, decoder: nn.Module, *args, **kwargs) -> None:
        super().__init__(decoder, *args, **kwargs)
        del self.factor_loc  # the means are the constant 1, not parameters

    def locs(self) -> dict[str, torch.Tensor]:
        """The guide means of the factors: ones (constants)."""
        return {f: torch.ones_like(self.raw_scale[self._key(f)]) for f in self._factors()}


@WEIGHT_POSTERIORS.register("rank1-mixture")
class RankOneMixtureWeights(RankOneWeights):
    """A uniform mixture of :data:`MIXTURE_COMPONENTS` rank-1 posteriors sharing W̄ and
    the biases (Dusenberry et al. 2020, Sec. 3.2): component k has its own factors
    r_k, s_k with mean-field Normal guides, and q(θ) = (1/K) Σ_k q_k(θ) (module
    docstring, "Mixture of rank-1 components"). The factor means start at draws from
    N(1, :data:`MIXTURE_LOC_SD`²) so that the components differ from the first step.
    Same parameters as :class:`DecoderWeights`."""

    def __init__(self, decoder: nn.Module, *args, **kwargs) -> None:
        self.components = MIXTURE_COMPONENTS
        super().__init__(decoder, *args, **kwargs)
        # the component whose guide the weight sites use (drawn per guide run)
        self._active = 0

    def _initial_factor_means(self, size: int, dtype: torch.dtype) -> torch.Tensor:
        """``(K, size)``: each component's means drawn from N(1, MIXTURE_LOC_SD²)."""
        return 1.0 + MIXTURE_LOC_SD * torch.randn(self.components, size, dtype=dtype)

    @contextlib.contextmanager
    def component(self, k: int):
        """Inside the block :meth:`locs`, :meth:`scales` and the guide's distributions
        are those of component ``k``."""
        saved = self._active
        self._active = int(k)
        try:
            yield self
        finally:
            self._active = saved

    def locs(self) -> dict[str, torch.Tensor]:
        """The guide means of the active component's factors."""
        return {f: self.factor_loc[self._key(f)][self._active] for f in self._factors()}

    def scales(self) -> dict[str, torch.Tensor]:
        return {
            f: F.softplus(SCALE_GAIN * self.raw_scale[self._key(f)][self._active]) + MIN_SCALE
            for f in self._factors()
        }

    def kl(self) -> torch.Tensor:
        """(1/K) Σ_k KL(q_k || p): the weight term of the objective, an upper bound on
        KL(q || p) of the mixture (convexity of the KL), so the ELBO with it is a lower
        bound on the mixture's ELBO."""
        total = 0.0
        for k in range(self.components):
            with self.component(k):
                total = total + super().kl()
        return total / self.components

    @contextlib.contextmanager
    def sites(self, batch: Batch | torch.Tensor, beta: float = 1.0, guide: bool = False):
        """As :meth:`DecoderWeights.sites`; the guide first draws its component k
        uniformly and records it as the point mass :data:`pyrovae.sites.WEIGHT_COMPONENT`
        (log-density 0, so the objective's weight term is log q_k(θ) − log p(θ), whose
        expectation is the averaged KL of :meth:`kl`; a replayed guide reads k back)."""
        k = self._active
        if guide and not self.is_fixed:
            drawn = torch.randint(self.components, ()).to(torch.get_default_dtype())
            record = dist.Delta(drawn).mask(False)  # log-density 0 at any replayed value
            k = pyro.sample(sites.WEIGHT_COMPONENT, record, infer={"is_auxiliary": True})
        with self.component(int(k)), super().sites(batch, beta=beta, guide=guide):
            yield

    @torch.no_grad()
    def draw(self) -> dict[str, torch.Tensor]:
        """One draw θ ~ q(θ): a component uniformly, then its factors."""
        with self.component(int(torch.randint(self.components, ()))):
            return super().draw()

    def mean_parameters(self) -> dict[str, torch.Tensor]:
        """W̄ ∘ (1/K) Σ_k E[r_k] E[s_k]ᵀ: the mean of the composed weights, the average
        of the components' means."""
        total: dict[str, torch.Tensor] = {}
        for k in range(self.components):
            with self.component(k):
                for n, w in self.compose(self.locs()).items():
                    total[n] = total[n] + w if n in total else w
        return {n: w / self.components for n, w in total.items()}


#: Keys of ``ModuleSpec.decoder_weights`` (all optional).
OPTION_KEYS = ("layers", "prior_scale", "beta_weights", "init_scale", "posterior")


def build_decoder_weights(decoder: nn.Module, options: dict | None) -> DecoderWeights | None:
    """:class:`DecoderWeights` from a spec's ``decoder_weights`` options (None when empty:
    a point decoder)."""
    if not options:
        return None
    opts = dict(options)
    unknown = sorted(set(opts) - set(OPTION_KEYS))
    if unknown:
        raise ConfigError(f"unknown decoder-weight option(s): {', '.join(unknown)}")
    cls = WEIGHT_POSTERIORS.get(opts.get("posterior") or DEFAULT_POSTERIOR)
    return cls(
        decoder,
        layers=opts.get("layers") or "all",
        prior_scale=opts.get("prior_scale", PRIOR_SCALE),
        beta_weights=opts.get("beta_weights", False),
        init_scale=opts.get("init_scale", INIT_SCALE),
    )


def at_weights(module, theta: dict[str, torch.Tensor] | None = None):
    """Context conditioning ``module``'s programs on decoder weights ``theta`` (None: the
    posterior mean) when its decoder is Bayesian; nothing for a point decoder."""
    weights = getattr(module, "decoder_weights", None)
    if weights is None:
        return contextlib.nullcontext()
    return weights.fixed(theta)
