"""The variational families: :class:`VAE` and the hierarchical :class:`HVAE`."""

from __future__ import annotations

import math
from typing import Any

import torch
from pyro.distributions import Distribution

from ..errors import ConfigError
from ..inference.calibration import sbc
from ..inference.loglik import WEIGHT_DRAWS, elbo_decomposition, log_likelihood
from ..inference.mcmc import refine
from ..models import at_weights
from ..objectives import OBJECTIVES, BetaSchedule, make_schedule
from .base import ESTIMATORS, Estimator

#: The decoder weights that ``decode`` and ``sample`` use: the posterior mean, or draws.
WEIGHT_MODES = ("mean", "sample")


@ESTIMATORS.register("vae")
class VAE(Estimator):
    """Variational autoencoder (a Pyro model + amortized guide, trained by SVI).

    Parameters
    ----------
    prior : str or Prior
        p(z) by name (see ``pyrovae components``) or object.
    guide : str or GuideHead
        q(z|x) head by name or object.
    prior_options, guide_options : dict, optional
        Keyword options of named components.
    objective : str
        ELBO estimator ("trace", "meanfield").
    particles : int
        Monte Carlo samples per data point in the training objective (K for IWAE).
    objective_options : dict, optional
        Keyword options of the objective (e.g. ``{"free_bits": 0.5}``).
    beta : float or BetaSchedule
        Weight of the KL term, or a schedule object.
    beta_schedule : str
        Schedule name used when ``beta`` is a number ("constant", "linear", "cyclical").
    beta_warmup : float
        Warm-up length (linear) or period (cyclical) in epochs.
    bayesian_decoder : bool
        A posterior over the decoder's weights (global latent sites with a N(0, s^2)
        prior and a mean-field Normal guide; see :mod:`pyrovae.models.bayesian` and
        docs/bayesian-decoder.md).
    decoder_prior_scale : float
        s of that prior (default 1).
    bayesian_layers : {"all", "last"}, optional
        Which decoder layers are Bayesian (default all); only with ``bayesian_decoder``.
    beta_weights : bool
        Whether β also scales the weights' KL (default: the z KL only).
    weight_posterior : str, optional
        The family of q(θ) in ``WEIGHT_POSTERIORS`` (:mod:`pyrovae.models.bayesian`):
        ``"meanfield"`` (default), ``"rank1"`` (W = W̄ ∘ r sᵀ with random r and s),
        ``"rank1-noise"`` (rank-1 with the means of r and s held at 1: multiplicative
        noise around W̄) or ``"rank1-mixture"`` (a uniform mixture of four rank-1
        components sharing W̄); only with ``bayesian_decoder``.
    **kwargs
        The shared parameters of :class:`Estimator`.
    """

    family = "vae"

    def __init__(
        self,
        *,
        prior="normal",
        guide="normal",
        prior_options: dict | None = None,
        guide_options: dict | None = None,
        objective: str = "trace",
        particles: int = 1,
        objective_options: dict | None = None,
        beta=1.0,
        beta_schedule: str = "constant",
        beta_warmup: float = 10.0,
        bayesian_decoder: bool = False,
        decoder_prior_scale: float = 1.0,
        bayesian_layers: str | None = None,
        beta_weights: bool = False,
        weight_posterior: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.weight_posterior = weight_posterior
        self.bayesian_decoder = bayesian_decoder
        self.decoder_prior_scale = decoder_prior_scale
        self.bayesian_layers = bayesian_layers
        self.beta_weights = beta_weights
        self.prior = prior
        self.guide = guide
        self.prior_options = prior_options
        self.guide_options = guide_options
        self.objective = objective
        self.particles = particles
        self.objective_options = objective_options
        self.beta = beta
        self.beta_schedule = beta_schedule
        self.beta_warmup = beta_warmup

    def _spec_kwargs(self) -> dict[str, Any]:
        return {
            "prior": self.prior,
            "guide": self.guide,
            "prior_options": dict(self.prior_options or {}),
            "guide_options": dict(self.guide_options or {}),
            "decoder_weights": self._decoder_weight_options(),
        }

    def _decoder_weight_options(self) -> dict[str, Any]:
        """The spec's ``decoder_weights`` (empty: a point decoder)."""
        if not self.bayesian_decoder:
            return {}
        return {
            "layers": self.bayesian_layers or "all",
            "prior_scale": self.decoder_prior_scale,
            "beta_weights": bool(self.beta_weights),
            "posterior": self.weight_posterior or "meanfield",
        }

    def _objective(self):
        if (
            isinstance(self.particles, bool)
            or not isinstance(self.particles, int)
            or self.particles < 1
        ):
            raise ConfigError(f"particles must be a positive integer; got {self.particles!r}")
        cls = OBJECTIVES.get(self.objective)
        try:
            return cls(num_particles=self.particles, **dict(self.objective_options or {}))
        except TypeError as exc:
            raise ConfigError(f"bad options for objective {self.objective!r}: {exc}") from None

    def _schedule(self) -> BetaSchedule:
        return make_schedule(self.beta, self.beta_schedule, self.beta_warmup)

    def check_params(self) -> None:
        super().check_params()
        objective = self._objective()
        self._schedule()
        if not isinstance(self.bayesian_decoder, bool):
            raise ConfigError(
                f"bayesian_decoder must be true or false; got {self.bayesian_decoder!r}"
            )
        for name in ("bayesian_layers", "weight_posterior"):
            if getattr(self, name) is not None and not self.bayesian_decoder:
                raise ConfigError(
                    f"{name} needs bayesian_decoder (the decoder is a point estimate)"
                )
        if self.bayesian_decoder and not objective.global_sites:
            raise ConfigError(
                f"the {self.objective} objective cannot score the Bayesian decoder's global "
                "weight sites (it would draw them per particle); use trace or meanfield"
            )

    def build(self, data_shape: tuple[int, ...], likelihood) -> None:
        super().build(data_shape, likelihood)
        objective = self._objective()
        if getattr(objective, "needs_mean_field", False) and not self.module_.mean_field:
            raise ConfigError(
                f"the {self.objective} objective assumes a mean-field guide, which the "
                f"{self.family} model does not have; use the trace objective"
            )

    @property
    def kl_weight(self) -> float | None:
        """The β of the KL term (a schedule's final value)."""
        beta = getattr(self.beta, "beta", self.beta)
        return float(beta) if isinstance(beta, (int, float)) else None

    def likelihood_metrics(
        self, x, samples: int, particles: int, novelty: torch.Tensor | None = None, *, y=None
    ) -> dict[str, float | None]:
        """Rate (KL), ELBO (``particles`` draws) and the importance-sampled log p(x)
        (``samples`` draws; ``-novelty`` where given) with its standard error, means
        per data point (``y``: the rows' conditions, for a conditional family)."""
        ev = self.evaluate(x, particles=particles, y=y)
        ll = -novelty if novelty is not None else self.log_likelihood(x, samples=samples, y=y)
        return {
            "rate": ev["kl"],
            "elbo": ev["elbo"],
            "log_likelihood": float(ll.mean()),
            "log_likelihood_se": float(ll.std() / math.sqrt(ll.numel())),
        }

    def novelty_scores(self, x, samples: int = 500, *, y=None) -> torch.Tensor:
        """-log p(x) per row (importance-sampled with ``samples`` draws)."""
        return -self.log_likelihood(x, samples=samples, y=y)

    def log_likelihood(
        self, x, samples: int = 5000, weight_draws: int = WEIGHT_DRAWS, *, y=None
    ) -> torch.Tensor:
        """Importance-sampled log p(x) per data point (nats), shape ``(N,)``; see
        :func:`pyrovae.inference.loglik.log_likelihood`. For a model trained with
        ``missing="mask"``, NaN entries are missing: log p(x_obs) of each row. For a
        Bayesian decoder, the predictive log E_q(θ)[p(x|θ)] with ``weight_draws`` draws
        of θ. For a conditional family, log p(x | c) given the rows' conditions ``y``."""

        self._check_fitted()
        if self.missing == "mask":
            data = self.as_observed(x)
            if data.mask is not None:
                self.module_.likelihood.validate(data.x[data.mask])
                return log_likelihood(
                    self.module_,
                    data.x,
                    samples=samples,
                    mask=data.mask,
                    weight_draws=weight_draws,
                )
        x = self.as_input(x)
        self.module_.likelihood.validate(x)
        return log_likelihood(
            self.module_, self.with_targets(x, y), samples=samples, weight_draws=weight_draws
        )

    @torch.no_grad()
    def evaluate(self, x, particles: int = 1, *, y=None) -> dict[str, float]:
        """As :meth:`Estimator.evaluate`; for a Bayesian decoder also ``weight_kl``, the
        total KL(q(θ) || p(θ)) in nats, whose share 1/N (N = rows of ``x``) every row's
        ``kl`` and ``elbo`` include (docs/bayesian-decoder.md)."""
        out = super().evaluate(x, particles, y=y)
        weights = self.module_.decoder_weights
        if weights is not None:
            out["weight_kl"] = float(weights.kl())
            out["weight_kl_per_point"] = out["weight_kl"] / out["n"]
        return out

    def _weight_draws(self, weights: str, n: int):
        """``n`` decoder weights for ``weights``: "mean" (None: the guide's mean, also the
        only value for a point decoder) or "sample" (independent draws from q(θ))."""
        if weights not in WEIGHT_MODES:
            raise ConfigError(f"weights must be one of {', '.join(WEIGHT_MODES)}; got {weights!r}")
        dw = self.module_.decoder_weights
        if dw is None or weights == "mean":
            return None
        return list(dw.draws(n))

    @torch.no_grad()
    def decode(self, z, condition=None, weights: str = "mean") -> Distribution:
        """p(x|z) for codes ``z`` ``(..., latent_dim)``; a Bayesian decoder at the mean of
        its weights (``weights="mean"``) or at an independent draw θ ~ q(θ) per code
        (``"sample"``: the rows of ``z`` are then the leading dimension). ``condition``
        is for conditional families; an unconditional one refuses it."""
        self._check_fitted()
        draws = self._weight_draws(weights, 0)
        if weights == "mean" or self.module_.decoder_weights is None:
            with at_weights(self.module_):
                return super().decode(z, condition)
        z = torch.as_tensor(z, dtype=torch.float32, device=self.device_)
        super().decode(z[:0], condition)  # the shape checks
        dw = self.module_.decoder_weights
        draws = self._weight_draws(weights, z.shape[0])
        raw = []
        for zi, theta in zip(z, draws, strict=True):
            with dw.fixed(theta):
                raw.append(dw(zi.unsqueeze(0)))
        return self.module_.likelihood(torch.cat(raw))

    @torch.no_grad()
    def sample(
        self, n: int, mean: bool = True, condition=None, weights: str = "mean"
    ) -> torch.Tensor:
        """``n`` new data points: E[x|z] (or a draw of x if ``mean=False``), z from the
        prior; a Bayesian decoder at the mean of its weights or (``weights="sample"``) at
        an independent draw θ ~ q(θ) for each point (the posterior predictive).
        ``condition`` is for conditional families; an unconditional one refuses it."""
        if condition is not None:
            return super().sample(n, mean, condition)  # refused with one line
        self._check_fitted()
        self._weight_draws(weights, 0)
        self.module_.eval()
        z = self.module_.sample_latent(int(n))
        px = self.decode(z, weights=weights)
        return px.mean if mean else px.sample()

    def analyze(self, x, samples: int = 5000, particles: int = 10, *, y=None) -> dict:
        """log p(x) with its standard error, bits/dim, the gap log p(x) - ELBO and the
        ELBO's decomposition; see :func:`pyrovae.analysis.elbo_decomposition`
        (``y``: the rows' conditions, for a conditional family)."""

        self._check_fitted()
        x = self.as_input(x)
        self.module_.likelihood.validate(x)
        data = self.with_targets(x, y)
        return elbo_decomposition(self.module_, data, samples=samples, particles=particles)

    def refine(self, x, num_samples: int = 300, warmup: int = 300, chains: int = 2) -> dict:
        """NUTS on z given x with the networks fixed, compared with the guide; see
        :func:`pyrovae.inference.mcmc.refine`."""

        self._check_fitted()
        x = self.as_input(x)
        self.module_.likelihood.validate(x)
        return refine(self.module_, x, num_samples, warmup, chains, seed=self.seed)

    def calibrate(self, n: int = 500, draws: int = 99) -> dict:
        """Simulation-based calibration of the guide on the model's own simulations; see
        :func:`pyrovae.inference.calibration.sbc`."""

        self._check_fitted()
        return sbc(self.module_, n=n, draws=draws, seed=self.seed)

    def elbo(self, x, particles: int = 1, *, y=None) -> torch.Tensor:
        """Per-data-point ELBO (beta = 1) in nats, shape ``(N,)`` (of the observed
        entries, for NaNs of a model trained with ``missing="mask"``; ``y``: the rows'
        conditions, for a conditional family)."""
        self._check_fitted()
        if self.missing == "mask":
            data = self.as_observed(x)
            if data.mask is not None:
                self.module_.likelihood.validate(data.x[data.mask])
                recon, kl = self._terms(data, particles)
                return recon - kl
        x = self.as_input(x)
        self.module_.likelihood.validate(x)
        recon, kl = self._terms(self.with_targets(x, y), particles)
        return recon - kl


@ESTIMATORS.register("hvae")
class HVAE(VAE):
    """Hierarchical VAE with two stochastic layers z2 -> z1 -> x (see
    :mod:`pyrovae.models.hierarchical`). ``prior`` is p(z2); ``guide`` is q(z1|x).

    Parameters
    ----------
    top_dim : int
        Size of z2 (0: ``latent_dim // 2``, at least 2).
    top_from_x : bool
        Guide q(z2|x) q(z1|x, z2) (Tomczak & Welling 2018) instead of q(z1|x) q(z2|z1);
        ``guide`` is then q(z2|x), and a prior built from the guide (``vamp``) can be
        p(z2).
    layer_hidden : int
        Width of the networks between the layers (p(z1|z2) and the guide's q(z2|z1)
        or q(z1|x, z2)).
    layer_depth : int
        Their number of hidden layers.
    layer_gated : bool
        Gated linear units in them instead of tanh layers.
    decoder_reads_top : bool
        The decoder reads both layers, p(x | z1, z2), as Tomczak & Welling's (2018); codes
        (``decode``, ``encode``, samples) are then [z1, z2], of size
        ``latent_dim + top_dim``.
    **kwargs
        The parameters of :class:`VAE`.
    """

    family = "hvae"

    def __init__(
        self,
        *,
        top_dim: int = 0,
        top_from_x: bool = False,
        layer_hidden: int = 64,
        layer_depth: int = 1,
        layer_gated: bool = False,
        decoder_reads_top: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.top_dim = top_dim
        self.top_from_x = top_from_x
        self.layer_hidden = layer_hidden
        self.layer_depth = layer_depth
        self.layer_gated = layer_gated
        self.decoder_reads_top = decoder_reads_top

    def _spec_kwargs(self) -> dict[str, Any]:
        opts = {
            "top_dim": self.top_dim,
            "top_from_x": self.top_from_x,
            "layer_hidden": self.layer_hidden,
            "layer_depth": self.layer_depth,
            "layer_gated": self.layer_gated,
            "decoder_reads_top": self.decoder_reads_top,
        }
        return {**super()._spec_kwargs(), "model_options": opts}
