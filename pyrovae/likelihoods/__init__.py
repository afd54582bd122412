"""Likelihoods p(x|z): decoder outputs -> distribution over x.

A likelihood is an ``nn.Module`` with a tiny contract (after the ``make_dist``
nets of Pyro's CEVAE):

* ``param_channels``: how many raw decoder outputs it needs per data dimension;
* ``forward(params)``: maps decoder output of shape
  ``(..., param_channels, *data_shape)`` to a distribution whose event shape
  is ``data_shape``;
* ``validate(x)``: raises :class:`~pyrovae.errors.DataError` if ``x`` lies
  outside the support.

The loss never branches on the likelihood: reconstruction is
``likelihood(decoder(z)).log_prob(x)``. Registry: :data:`LIKELIHOODS`.
"""

from __future__ import annotations

from ..registry import Registry

LIKELIHOODS: Registry = Registry("likelihood")

from .base import Likelihood  # noqa: E402
from .bernoulli import BernoulliLikelihood  # noqa: E402
from .continuous import (  # noqa: E402
    BetaLikelihood,
    ContinuousBernoulliLikelihood,
    HeteroscedasticGaussianLikelihood,
    LaplaceLikelihood,
    LearnedGaussianLikelihood,
    StudentTLikelihood,
)
from .discrete import (  # noqa: E402
    Categorical256Likelihood,
    DiscretizedLogisticLikelihood,
    NegativeBinomialLikelihood,
    PoissonLikelihood,
    ZINBLikelihood,
)
from .gaussian import GaussianLikelihood  # noqa: E402

__all__ = [
    "LIKELIHOODS",
    "BernoulliLikelihood",
    "BetaLikelihood",
    "Categorical256Likelihood",
    "ContinuousBernoulliLikelihood",
    "DiscretizedLogisticLikelihood",
    "GaussianLikelihood",
    "HeteroscedasticGaussianLikelihood",
    "LaplaceLikelihood",
    "LearnedGaussianLikelihood",
    "Likelihood",
    "NegativeBinomialLikelihood",
    "PoissonLikelihood",
    "StudentTLikelihood",
    "ZINBLikelihood",
]
