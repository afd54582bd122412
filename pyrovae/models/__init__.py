"""Model assembly: the VAE as a Pyro model + guide, and the autoencoder baselines.

Every model family is an ``nn.Module`` exposing ``model(x)`` and ``guide(x)``
(Pyro programs over the sites in :mod:`pyrovae.sites`), ``encode(x)`` and
``decode(z)``, and its guide's joint posterior through ``posterior_sample``,
``posterior_moments`` and ``posterior_log_prob`` (:class:`GuidePosterior`).
Families are registered in :data:`MODELS` and built from a plain-data spec by
:func:`build_module`.
"""

from __future__ import annotations

from ..registry import Registry

MODELS: Registry = Registry("model")

from .autoencoder import CORRUPTIONS, AEModule, DAEModule  # noqa: E402
from .base import (  # noqa: E402
    MOMENT_DRAWS,
    GuidePosterior,
    LatentModule,
    ModuleSpec,
    Moments,
    build_module,
    distribution_moments,
)
from .bayesian import DecoderWeights, at_weights  # noqa: E402
from .cvae import CVAEModule  # noqa: E402
from .hierarchical import HierarchicalVAEModule  # noqa: E402
from .m2 import M2Module  # noqa: E402
from .vae import VAEModule  # noqa: E402

__all__ = [
    "CORRUPTIONS",
    "DecoderWeights",
    "at_weights",
    "MODELS",
    "MOMENT_DRAWS",
    "AEModule",
    "CVAEModule",
    "DAEModule",
    "GuidePosterior",
    "Moments",
    "distribution_moments",
    "HierarchicalVAEModule",
    "LatentModule",
    "M2Module",
    "ModuleSpec",
    "VAEModule",
    "build_module",
]
