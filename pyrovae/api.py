"""The public Python API: the scikit-learn-style estimators and their loaders.

A facade over :mod:`pyrovae.estimators`::

    from pyrovae.api import VAE
    vae = VAE(latent_dim=8, likelihood="bernoulli", beta=1.0).fit(x)
    q = vae.encode(x)          # q(z|x): q.mean, q.stddev
    px = vae.decode(q.mean)    # p(x|z)
    vae.save("vae.pt"); vae2 = VAE.load("vae.pt")
    prior = prior_module(vae, "f")  # z ~ p(z), decoded: a prior for your Pyro model
"""

from .estimators import (
    AE,
    CVAE,
    DAE,
    ESTIMATORS,
    HVAE,
    M2,
    VAE,
    Estimator,
    estimator_params,
    from_checkpoint,
    load,
    prior_module,
    resume,
)

__all__ = [
    "AE",
    "CVAE",
    "DAE",
    "ESTIMATORS",
    "HVAE",
    "M2",
    "VAE",
    "Estimator",
    "estimator_params",
    "from_checkpoint",
    "load",
    "prior_module",
    "resume",
]
