"""The public Python API: the scikit-learn-style estimators and their loaders.

A facade over :mod:`pyrovae.estimators`::

    from pyrovae.api import VAE
    vae = VAE(latent_dim=8, likelihood="bernoulli", beta=1.0).fit(x)
    q = vae.encode(x)          # q(z|x): q.mean, q.stddev
    px = vae.decode(q.mean)    # p(x|z)
    vae.save("vae.pt"); vae2 = VAE.load("vae.pt")
"""

from .estimators import (
    AE,
    CVAE,
    DAE,
    ESTIMATORS,
    HVAE,
    VAE,
    Estimator,
    estimator_params,
    from_checkpoint,
    load,
    resume,
)

__all__ = [
    "AE",
    "CVAE",
    "DAE",
    "ESTIMATORS",
    "HVAE",
    "VAE",
    "Estimator",
    "estimator_params",
    "from_checkpoint",
    "load",
    "resume",
]
