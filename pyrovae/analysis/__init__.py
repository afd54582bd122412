"""Posterior analysis of fitted models and runs: export of posterior draws to ArviZ,
inference gaps, model selection, comparison of runs, disentanglement, uncertainty maps.

The statistics these build on (importance-sampled log p(x), NUTS refinement, SBC,
Pareto k-hat) live one layer down in :mod:`pyrovae.inference` and are re-exported here.
:func:`analyze_run` writes the posterior analysis of a trained run (``pyrovae analyze``).
"""

from ..inference.calibration import plot_rank_histograms, sbc
from ..inference.loglik import elbo_decomposition, log_likelihood
from ..inference.mcmc import refine
from ..inference.psis import pareto_khat
from .analyze import analyze_run
from .comparison import compare_runs
from .disentanglement import beta_vae_score, mig
from .export import posterior_groups, to_arviz
from .gaps import inference_gaps
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
