"""Posterior analysis: importance-sampled log-likelihood, the ELBO's decomposition,
and export of posterior draws to ArviZ."""

from .export import posterior_groups, to_arviz
from .loglik import elbo_decomposition, log_likelihood

__all__ = ["elbo_decomposition", "log_likelihood", "posterior_groups", "to_arviz"]
