"""Shared skeleton of every model family: networks + likelihood, built from a spec."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from pyro.distributions import Distribution
from torch import nn

from ..errors import ConfigError
from ..likelihoods import LIKELIHOODS, Likelihood
from ..nets import DECODERS, ENCODERS


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


def _build(registry, name_or_obj, *args, options: dict, **kwargs):
    """Build a component from the registry, turning bad options into one-line errors."""
    if not isinstance(name_or_obj, str):
        return name_or_obj
    cls = registry.get(name_or_obj)
    try:
        return cls(*args, **kwargs, **options)
    except TypeError as exc:
        raise ConfigError(f"bad options for {registry.kind} {name_or_obj!r}: {exc}") from None


class LatentModule(nn.Module):
    """Encoder body, decoder body and likelihood shared by all model families.

    Subclasses define the Pyro programs :meth:`model` and :meth:`guide` and
    :meth:`encode`. ``beta`` is read by models with latent sites.
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
        self.encoder = ENCODERS.get(spec.net)(self.data_shape, **net_kw)
        self.decoder = DECODERS.get(spec.net)(
            self.latent_dim, self.data_shape, self.likelihood.param_channels, **net_kw
        )
        self.beta = 1.0

    def _build_prior_and_guide(self, prior_dim: int, guide_dim: int | None = None) -> None:
        """Build ``self.prior`` over ``prior_dim`` and ``self.guide_head`` over
        ``guide_dim`` (default ``latent_dim``) from the spec, bind the prior, and check
        their sizes."""
        from ..guides import GUIDES
        from ..priors import PRIORS
        from .checks import check_latent_sizes

        spec = self.spec
        guide_dim = self.latent_dim if guide_dim is None else int(guide_dim)
        self.prior = _build(PRIORS, spec.prior, prior_dim, options=spec.prior_options)
        self.guide_head = _build(
            GUIDES,
            spec.guide,
            self.encoder.out_features,
            guide_dim,
            options=spec.guide_options,
        )
        self.prior.bind(self)
        check_latent_sizes(self.prior, prior_dim, self.guide_head, guide_dim)

    # -- Pyro programs -------------------------------------------------
    def model(self, x: torch.Tensor) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def guide(self, x: torch.Tensor) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- deterministic helpers -----------------------------------------
    def encode(self, x: torch.Tensor) -> Distribution:  # pragma: no cover - abstract
        raise NotImplementedError

    def prior_encode(self, x: torch.Tensor) -> Distribution:
        """The amortized posterior over the prior's latent space, for priors built from
        the guide (the VampPrior). The same as :meth:`encode` unless a family's prior
        lives on another latent (the hierarchical VAE's top layer)."""
        return self.encode(x)

    #: Names of the submodules that belong to the guide q(z|x) (the rest is p(x, z)).
    guide_parts: tuple[str, ...] = ("encoder", "guide_head")

    def decode(self, z: torch.Tensor) -> Distribution:
        """p(x|z) for codes ``z`` of shape ``(..., latent_dim)``."""
        return self.likelihood(self.decoder(z))

    def sample_latent(self, n: int) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def has_latent_sites(self) -> bool:
        """Whether the model has random latent variables (VAEs) or not (AEs)."""
        return False

    #: Whether the guide is mean-field with respect to the model (what
    #: ``TraceMeanField_ELBO`` assumes): no latent's model parents descend from
    #: it in the guide.
    mean_field: bool = True


def build_module(family: str, spec: ModuleSpec) -> LatentModule:
    """Build the model family registered as ``family`` from ``spec``."""
    from . import MODELS

    return MODELS.get(family)(spec)
