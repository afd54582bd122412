"""The variational families: :class:`VAE` and the hierarchical :class:`HVAE`."""

from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import ConfigError
from ..inference.calibration import sbc
from ..inference.loglik import elbo_decomposition, log_likelihood
from ..inference.mcmc import refine
from ..objectives import OBJECTIVES, BetaSchedule, make_schedule
from .base import ESTIMATORS, Estimator


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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
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
        self._objective()
        self._schedule()

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

    def log_likelihood(self, x, samples: int = 5000, *, y=None) -> torch.Tensor:
        """Importance-sampled log p(x) per data point (nats), shape ``(N,)``; see
        :func:`pyrovae.analysis.log_likelihood`. For a model trained with
        ``missing="mask"``, NaN entries are missing: log p(x_obs) of each row. For a
        conditional family, log p(x | c) given the rows' conditions ``y``."""

        self._check_fitted()
        if self.missing == "mask":
            data = self.as_observed(x)
            if data.mask is not None:
                self.module_.likelihood.validate(data.x[data.mask])
                return log_likelihood(self.module_, data.x, samples=samples, mask=data.mask)
        x = self.as_input(x)
        self.module_.likelihood.validate(x)
        return log_likelihood(self.module_, self.with_targets(x, y), samples=samples)

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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.top_dim = top_dim
        self.top_from_x = top_from_x
        self.layer_hidden = layer_hidden
        self.layer_depth = layer_depth
        self.layer_gated = layer_gated

    def _spec_kwargs(self) -> dict[str, Any]:
        opts = {
            "top_dim": self.top_dim,
            "top_from_x": self.top_from_x,
            "layer_hidden": self.layer_hidden,
            "layer_depth": self.layer_depth,
            "layer_gated": self.layer_gated,
        }
        return {**super()._spec_kwargs(), "model_options": opts}
