"""Shared skeleton of every model family: networks + likelihood, built from a spec.

Observation masks: a batch may carry a mask (``True`` where an entry of x was
observed). The model scores only the observed entries, through
:meth:`~pyrovae.likelihoods.Likelihood.masked` (a partly observed row is one event),
and a family built with ``spec.mask_input`` (a model trained with missing entries)
reads the rows through an encoder of :data:`~pyrovae.nets.MASK_ENCODERS`
(``spec.mask_encoder``: the zero-filled x concatenated with the mask, or the Partial
VAE's set encoder), so that the guide knows which entries are missing; without it the
encoder reads the zero-filled x alone.

Every family also answers questions about its guide's joint posterior q(z|x) through
:class:`GuidePosterior`: draws of every latent site (:meth:`~GuidePosterior.posterior_sample`),
their means and standard deviations (:meth:`~GuidePosterior.posterior_moments`) and the
joint log density (:meth:`~GuidePosterior.posterior_log_prob`). The posterior analyses
(:mod:`pyrovae.analysis`) read the posterior only through these three methods.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from pyro.distributions import Distribution
from torch import nn

from .. import sites
from ..data.batch import Batch, as_batch
from ..errors import ConfigError
from ..likelihoods import LIKELIHOODS, Likelihood
from ..nets import DECODERS, ENCODERS, MASK_ENCODERS
from .bayesian import DecoderWeights, build_decoder_weights

#: Draws used for posterior moments that have no closed form.
MOMENT_DRAWS = 1000
#: Draws θ ~ q(θ) of a Bayesian decoder averaged when held-out rows are scored
#: (:meth:`LatentModule.held_out`): the early-stopping monitor's noise from θ falls by
#: √10, and the validation pass costs ten forward passes instead of one.
HELD_OUT_DRAWS = 10


@dataclass
class ModuleSpec:
    """Plain-data description of a model; enough to rebuild it for a checkpoint.

    Components may be given by registered name or (in Python) as objects.
    """

    data_shape: tuple[int, ...]
    latent_dim: int = 16
    net: str = "mlp"
    hidden: tuple[int, ...] = (400,)
    activation: str = "relu"
    prior: Any = "normal"
    likelihood: Any = "bernoulli"
    guide: Any = "normal"
    prior_options: dict = field(default_factory=dict)
    likelihood_options: dict = field(default_factory=dict)
    guide_options: dict = field(default_factory=dict)
    model_options: dict = field(default_factory=dict)
    #: Extra keyword options of the encoder and decoder bodies (``--net-options``).
    net_options: dict = field(default_factory=dict)
    #: The encoder reads the zero-filled x and the observation mask (a model trained
    #: with missing entries); ``False`` for runs made before masks existed.
    mask_input: bool = False
    #: How it reads them: a name in :data:`~pyrovae.nets.MASK_ENCODERS`.
    mask_encoder: str = "concat"
    #: Bayesian decoder weights (:mod:`pyrovae.models.bayesian`): empty for a point
    #: decoder, else its options (``layers``, ``prior_scale``, ``beta_weights``).
    decoder_weights: dict = field(default_factory=dict)


def zero_filled(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``x`` with the entries where ``mask`` is ``False`` set to 0 (``x`` if no mask)."""
    return x if mask is None else torch.where(mask, x, x.new_zeros(()))


def _build(registry, name_or_obj, *args, options: dict, **kwargs):
    """Build a component from the registry, turning bad options into one-line errors."""
    if not isinstance(name_or_obj, str):
        return name_or_obj
    cls = registry.get(name_or_obj)
    try:
        return cls(*args, **kwargs, **options)
    except TypeError as exc:
        raise ConfigError(f"bad options for {registry.kind} {name_or_obj!r}: {exc}") from None


def _net_options(spec: ModuleSpec) -> dict:
    """The spec's extra network options, checked against the bodies' signatures so that
    an unknown one is a one-line :class:`ConfigError` (not a TypeError deep inside)."""
    import inspect

    options = dict(getattr(spec, "net_options", None) or {})
    for registry in (ENCODERS, DECODERS):
        cls = registry.get(spec.net)
        params = inspect.signature(cls).parameters.values()
        if any(p.kind is p.VAR_KEYWORD for p in params):
            continue
        names = {p.name for p in params}
        unknown = sorted(set(options) - names)
        if unknown:
            raise ConfigError(f"the {spec.net} network has no option {unknown[0]!r}")
    return options


class Moments(NamedTuple):
    """Mean and standard deviation of one latent site under the guide, each ``(B, dim)``."""

    mean: torch.Tensor
    sd: torch.Tensor


def distribution_moments(q: Distribution, n: int = MOMENT_DRAWS) -> Moments:
    """``q``'s mean and standard deviation: its own where it defines them (closed forms,
    or a guide's own Monte Carlo estimate), else the sample moments of ``n`` draws."""
    try:
        return Moments(q.mean, q.stddev)
    except NotImplementedError:
        z = q.sample((int(n),))
        return Moments(z.mean(0), z.std(0))


def require_latent_variables(module, what: str) -> None:
    """Raise a one-line :class:`ConfigError` unless ``module`` is a family with latent
    sample sites (a VAE, not an autoencoder): ``what`` names the analysis asked for."""
    if not getattr(module, "has_latent_sites", False):
        raise ConfigError(f"{what} needs a model with latent variables (not an autoencoder)")


class GuidePosterior:
    """The guide's joint posterior, for a family whose guide is the one site
    ``sites.LATENT`` ~ :meth:`encode` (x). Families with more latent sites override the
    three methods; analysis code calls only them.

    ``sites.LATENT`` is always the code the decoder reads (for an autoencoder, its point
    code: draws are copies of it and its sd is 0).
    """

    def encode(self, x: torch.Tensor) -> Distribution:  # pragma: no cover - abstract
        raise NotImplementedError

    def posterior_sample(
        self, x: torch.Tensor, n: int, mask: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """``n`` joint draws of the guide's latent sites for each row of ``x`` (observed
        where ``mask`` is ``True``; ``None``: everywhere).

        Returns
        -------
        dict
            Site name -> draws of shape ``(n, B, dim)``.
        """
        return {sites.LATENT: self._encode_masked(x, mask).sample((int(n),))}

    def posterior_moments(
        self, x: torch.Tensor, n: int = MOMENT_DRAWS, mask: torch.Tensor | None = None
    ) -> dict[str, Moments]:
        """Mean and sd of each latent site under the guide's joint posterior, exact where
        the guide's distributions have closed forms and from ``n`` draws elsewhere."""
        return {sites.LATENT: distribution_moments(self._encode_masked(x, mask), n)}

    def posterior_log_prob(
        self, x: torch.Tensor, draws: dict[str, torch.Tensor], mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """log q(z|x) of the joint guide at ``draws`` (site -> ``(..., dim)``, broadcasting
        against the batch of ``x``), shape the broadcast batch shape."""
        return self._encode_masked(x, mask).log_prob(draws[sites.LATENT])

    def _encode_masked(self, x: torch.Tensor, mask: torch.Tensor | None) -> Distribution:
        """``encode(x)``, passing ``mask`` only when there is one (families written
        before masks take ``encode(x)`` alone)."""
        return self.encode(x) if mask is None else self.encode(x, mask=mask)


class LatentModule(GuidePosterior, nn.Module):
    """Encoder body, decoder body and likelihood shared by all model families.

    Subclasses define the Pyro programs :meth:`model` and :meth:`guide` and
    :meth:`encode`, and override the :class:`GuidePosterior` methods when their guide has
    more than the one latent site ``encode`` describes.

    Both programs take a minibatch (a :class:`~pyrovae.data.Batch`, or a tensor that
    :func:`~pyrovae.data.as_batch` wraps) and the KL weight ``beta`` as a keyword
    (default 1: the ELBO); families with latent sites scale them by ``beta`` in both
    programs (``poutine.scale``), the autoencoders ignore it.
    """

    def __init__(self, spec: ModuleSpec) -> None:
        super().__init__()
        self.spec = spec
        self.data_shape = tuple(int(s) for s in spec.data_shape)
        self.latent_dim = int(spec.latent_dim)
        if self.latent_dim <= 0:
            raise ConfigError(f"latent_dim must be a positive integer; got {spec.latent_dim}")
        self.likelihood: Likelihood = _build(
            LIKELIHOODS, spec.likelihood, self.data_shape, options=spec.likelihood_options
        )
        net_kw = {"hidden": tuple(spec.hidden), "activation": spec.activation}
        net_options = _net_options(spec)
        self.mask_input = bool(getattr(spec, "mask_input", False))
        if self.mask_input:
            name = getattr(spec, "mask_encoder", "concat")
            self.encoder = MASK_ENCODERS.get(name)(self.data_shape, spec.net, **net_kw)
        else:
            self.encoder = ENCODERS.get(spec.net)(self.data_shape, **net_kw, **net_options)
        channels = self.likelihood.param_channels
        self.code_dim = int(self.code_size(spec))
        self.decoder = DECODERS.get(spec.net)(
            self.code_dim, self.data_shape, channels, **net_kw, **net_options
        )
        self.decoder_weights = self.build_decoder_weights(dict(spec.decoder_weights or {}))

    @classmethod
    def code_size(cls, spec: ModuleSpec) -> int:
        """Width of the code the decoder reads (``latent_dim`` unless a family's decoder
        reads more than its bottom latent layer)."""
        return int(spec.latent_dim)

    def guide_input(self, batch: Batch):
        """What :meth:`encode` and the posterior methods read for the rows of ``batch``:
        the data ``x`` (a conditional family reads the whole batch, conditions included)."""
        return as_batch(batch).x

    def code_of(self, draws: dict[str, torch.Tensor]) -> torch.Tensor:
        """The decoder's input, ``(..., code_dim)``, from draws of the latent sites (as
        :meth:`posterior_sample` returns them)."""
        return draws[sites.LATENT]

    #: Width of the condition code the programs read from ``Batch.y`` (0: the family is
    #: unconditional; conditional priors refuse such a family).
    condition_dim: int = 0

    def build_decoder_weights(self, options: dict) -> DecoderWeights | None:
        """The random decoder weights that ``options`` describe (None: a point decoder);
        see :mod:`pyrovae.models.bayesian`. Families without latent sites refuse them."""
        return build_decoder_weights(self.decoder, options)

    def weight_sites(self, batch: Batch | torch.Tensor, beta: float = 1.0, guide: bool = False):
        """Context of the global decoder-weight sites of the model (``guide=False``) or
        the guide: inside it the decoder runs at the drawn θ. Nothing for a point decoder."""
        if self.decoder_weights is None:
            return contextlib.nullcontext()
        return self.decoder_weights.sites(batch, beta, guide)

    def held_out(self, draws: int = HELD_OUT_DRAWS):
        """Contexts under which to score rows that did not train the module (the validation
        split of early stopping), one after the other, averaging the scores: the weight
        KL belongs to the training set, so for a Bayesian decoder the weight sites are
        left out and the decoder runs at ``draws`` independent draws θ_s ~ q(θ), one per
        context; the mean loss is then an estimate of E_q(θ)[ℓ_n(θ)] per row, the
        negative ELBO of the held-out rows under the weight posterior, whose variance
        from θ falls as 1/``draws`` (:mod:`pyrovae.models.bayesian`). One empty context
        for a point decoder."""
        if self.decoder_weights is None:
            yield contextlib.nullcontext()
            return
        for theta in self.decoder_weights.draws(draws):
            yield self.decoder_weights.fixed(theta)

    def _build_prior_and_guide(
        self, prior_dim: int, guide_dim: int | None = None, guide_features: int | None = None
    ) -> None:
        """Build ``self.prior`` over ``prior_dim`` and ``self.guide_head`` over
        ``guide_dim`` (default ``latent_dim``) from the spec, reading ``guide_features``
        inputs (default the encoder's ``out_features``), bind the prior, and check their
        sizes."""
        from ..guides import GUIDES
        from ..priors import PRIORS
        from .checks import check_latent_sizes

        spec = self.spec
        guide_dim = self.latent_dim if guide_dim is None else int(guide_dim)
        self.prior = _build(PRIORS, spec.prior, prior_dim, options=spec.prior_options)
        features = self.encoder.out_features if guide_features is None else int(guide_features)
        self.guide_head = _build(
            GUIDES,
            spec.guide,
            features,
            guide_dim,
            options=spec.guide_options,
        )
        self.prior.bind(self)
        check_latent_sizes(self.prior, prior_dim, self.guide_head, guide_dim)

    # -- Pyro programs -------------------------------------------------
    def model(self, batch: Batch, beta: float = 1.0) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def guide(self, batch: Batch, beta: float = 1.0) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def targets(self, y) -> torch.Tensor | None:
        """The labels or conditions this family's programs read from ``Batch.y``, encoded
        from the ``y`` that ``fit(X, y)`` was given (one entry per row).

        None for the families that do not condition on labels (every unconditional
        one): their batches then carry no ``y``. Conditional families override this to
        encode ``y`` (class indices, one-hot codes or covariates) and to refuse labels
        they cannot use with one line.
        """
        return None

    def observed(self, batch: Batch | torch.Tensor) -> torch.Tensor:
        """The data ``x`` of ``batch`` (its labels are ignored); with an observation
        mask, the missing entries are replaced by the likelihood's in-support
        :attr:`~pyrovae.likelihoods.Likelihood.missing_value` (they are never scored:
        see :meth:`observe`)."""
        batch = as_batch(batch)
        if batch.mask is None:
            return batch.x
        return torch.where(batch.mask, batch.x, batch.x.new_tensor(self.likelihood.missing_value))

    def observe(self, px: Distribution, mask: torch.Tensor | None) -> Distribution:
        """The distribution the observation site scores: p(x|z) itself, or with a mask
        p(x_obs|z) over the observed entries (one event per row)."""
        return self.likelihood.masked(px, mask)

    def features(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The encoder's features of rows ``x`` observed where ``mask`` is ``True``
        (``None``: everywhere): the encoder reads the zero-filled x and, for a family
        built with ``spec.mask_input``, the mask too (module docstring)."""
        if self.mask_input:
            return self.encoder(x, mask)
        return self.encoder(zero_filled(x, mask))

    # -- deterministic helpers -----------------------------------------
    def encode(self, x: torch.Tensor) -> Distribution:  # pragma: no cover - abstract
        raise NotImplementedError

    def prior_encode(self, x: torch.Tensor) -> Distribution:
        """The amortized posterior over the prior's latent space, for priors built from
        the guide (the VampPrior). The same as :meth:`encode` unless a family's prior
        lives on another latent (the hierarchical VAE's top layer)."""
        return self.encode(x)

    def decode(self, z: torch.Tensor) -> Distribution:
        """p(x|z) for codes ``z`` of shape ``(..., code_dim)`` (see :meth:`code_of`)."""
        net = self.decoder if self.decoder_weights is None else self.decoder_weights
        return self.likelihood(net(z))

    def decode_rows(self, z: torch.Tensor, data) -> Distribution:
        """p(x | z) for draws ``z`` ``(..., B, latent_dim)`` of the ``B`` rows of ``data``
        (a tensor or a :class:`~pyrovae.data.Batch`): :meth:`decode`, given the rows'
        conditions in a conditional family."""
        return self.decode(z)

    def sample_latent(self, n: int) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def prior_program(self, prefix: str) -> torch.Tensor:
        """Draw the code the decoder reads from the model's own prior as Pyro sample
        sites named ``f"{prefix}_{site}"`` (one per latent layer, ``site`` from
        :mod:`pyrovae.sites`), for use inside another Pyro program; returns the code.
        Families without latent variables refuse with one line."""
        require_latent_variables(self, "a decoder prior")
        raise NotImplementedError  # pragma: no cover - every latent family overrides it

    @property
    def has_latent_sites(self) -> bool:
        """Whether the model has random latent variables (VAEs) or not (AEs)."""
        return False

    def direct_log_weights(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> Callable[[int], torch.Tensor]:
        """Importance log-weights of the family's own model and guide, without Pyro's traces.

        Returns a function of ``k`` that draws ``k`` fresh joint samples z ~ q(z|x) per row
        of ``x`` (the guide's distributions built once, for every call) and returns
        log p(x, z) - log q(z|x), shape ``(k, B)``, with beta = 1: the values that the
        traces of :meth:`model` and :meth:`guide` in a particles plate give, from the same
        random draws, without the handlers and site bookkeeping. With ``mask``
        (``True`` = observed), the weights of p(x_obs, z) / q(z | x_obs, mask).

        Raises
        ------
        NotImplementedError
            With the reason, for a family (or a subclass that changes its model or guide)
            that has no direct form; callers then use the traces.
        """
        raise NotImplementedError(f"the {type(self).__name__} family has no direct log-weights")

    def direct_elbo_terms(self, batch: Batch, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
        """One-particle ELBO terms of the family's own model and guide, without Pyro's
        traces: ``(recon, kl)``, each ``(B,)`` and differentiable, where ``recon`` is
        log p(x_n|z_n) and ``kl`` the single-draw estimate log q(z_n|x_n) - log p(z_n),
        from the same random draws the guide's sites take, so that
        ``-(recon - beta * kl).sum()`` is ``Trace_ELBO``'s loss (and surrogate) on the
        same draws.

        Raises
        ------
        NotImplementedError
            With the reason, for a family (or a batch) that has no direct form; the
            objective then runs the traces (:mod:`pyrovae.objectives.elbo`).
        """
        raise NotImplementedError(f"the {type(self).__name__} family has no direct ELBO")

    #: The registered objective that evaluates this family's ELBO outside training
    #: (:func:`pyrovae.inference.loglik.elbo_terms`): the trace ELBO, or for a family
    #: with enumerated discrete sites the one that sums them out.
    elbo_objective: str = "trace"

    #: Whether the guide is mean-field with respect to the model (what
    #: ``TraceMeanField_ELBO`` assumes): no latent's model parents descend from
    #: it in the guide.
    mean_field: bool = True


def build_module(family: str, spec: ModuleSpec) -> LatentModule:
    """Build the model family registered as ``family`` from ``spec``."""
    from . import MODELS

    return MODELS.get(family)(spec)
