"""Posterior analysis: importance-sampled log-likelihood and the ELBO's decomposition."""

from .loglik import elbo_decomposition, log_likelihood

__all__ = ["elbo_decomposition", "log_likelihood"]
