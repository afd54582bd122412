"""Posterior analysis: importance-sampled log-likelihood, the ELBO's decomposition,
export of posterior draws to ArviZ, NUTS refinement and Pareto k-hat; :func:`analyze_run`
writes all of them for a trained run (``pyrovae analyze``)."""

from .analyze import analyze_run
from .calibration import plot_rank_histograms, sbc
from .comparison import compare_runs
from .disentanglement import beta_vae_score, mig
from .export import posterior_groups, to_arviz
from .gaps import inference_gaps
from .loglik import elbo_decomposition, log_likelihood
from .mcmc import refine
from .psis import pareto_khat
from .selection import compare, latent_dim_curve, plot_selection

__all__ = [
    "analyze_run",
    "beta_vae_score",
    "compare_runs",
    "mig",
    "compare",
    "latent_dim_curve",
    "plot_selection",
    "elbo_decomposition",
    "inference_gaps",
    "log_likelihood",
    "pareto_khat",
    "plot_rank_histograms",
    "posterior_groups",
    "refine",
    "sbc",
    "to_arviz",
]
