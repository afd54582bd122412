"""scikit-learn-style estimators, one per model family.

:class:`VAE`, :class:`HVAE`, :class:`CVAE`, :class:`M2`, :class:`AE` and :class:`DAE` share
:class:`Estimator`'s protocol (``fit`` / ``encode`` / ``decode`` / ``evaluate`` /
``score``, ``save`` / ``load``) and its public build-and-train seam; :func:`load`,
:func:`resume` and :func:`from_checkpoint` rebuild them from checkpoints;
:func:`prior_module` turns a fitted decoder into a prior for another Pyro model.
"""

from .autoencoder import AE, DAE
from .base import (
    COMPONENT_PARAMS,
    ESTIMATORS,
    Estimator,
    component_record,
    estimator_params,
    from_checkpoint,
)
from .cvae import CVAE
from .m2 import M2
from .priorvae import prior_module
from .resume import load, resume
from .vae import HVAE, VAE

__all__ = [
    "AE",
    "COMPONENT_PARAMS",
    "CVAE",
    "DAE",
    "ESTIMATORS",
    "Estimator",
    "HVAE",
    "M2",
    "VAE",
    "component_record",
    "estimator_params",
    "from_checkpoint",
    "load",
    "prior_module",
    "resume",
]
