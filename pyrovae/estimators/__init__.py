"""scikit-learn-style estimators, one per model family.

:class:`VAE`, :class:`HVAE`, :class:`CVAE`, :class:`AE` and :class:`DAE` share :class:`Estimator`'s
protocol (``fit`` / ``encode`` / ``decode`` / ``evaluate`` / ``score``, ``save`` /
``load``) and its public build-and-train seam; :func:`load`, :func:`resume` and
:func:`from_checkpoint` rebuild them from checkpoints.
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
    "VAE",
    "component_record",
    "estimator_params",
    "from_checkpoint",
    "load",
    "resume",
]
