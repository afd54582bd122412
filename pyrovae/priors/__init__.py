"""Priors p(z).

A prior is a :class:`~pyro.nn.PyroModule` whose ``forward()`` returns a
distribution over ``z`` with ``event_shape == (latent_dim,)`` and empty batch
shape; the ``data`` plate broadcasts it over the minibatch. A conditional prior
(``Prior.conditional``) takes the condition codes instead and returns their batch
shape. Priors are found by name in :data:`PRIORS`.
"""

from __future__ import annotations

from ..registry import Registry

PRIORS: Registry = Registry("prior")

from .base import Prior  # noqa: E402
from .conditional import ConditionalNormalPrior  # noqa: E402
from .flow import FlowPrior  # noqa: E402
from .heavy import LaplacePrior, StudentTPrior  # noqa: E402
from .learned import LearnedNormalPrior  # noqa: E402
from .mixture import MixtureOfGaussiansPrior, VampPrior  # noqa: E402
from .normal import StandardNormalPrior  # noqa: E402

__all__ = [
    "PRIORS",
    "ConditionalNormalPrior",
    "FlowPrior",
    "LaplacePrior",
    "LearnedNormalPrior",
    "MixtureOfGaussiansPrior",
    "Prior",
    "StandardNormalPrior",
    "StudentTPrior",
    "VampPrior",
]
