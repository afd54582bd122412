"""Inference on a trained model: the statistics that the estimators, the analyses and
the reports share.

* :func:`log_likelihood` — importance-sampled log p(x) per data point (Burda et al.
  2016), with :func:`elbo_terms` and :func:`elbo_decomposition` (the ELBO, its terms,
  the gap, active units and I(x; z));
* :func:`refine` — NUTS on z given x with the networks fixed, against the guide;
* :mod:`.conditioning` and :mod:`.conditioners` — the posterior given partly observed
  rows (methods ``guide``, ``svi``, ``nuts``);
* :func:`sbc` — simulation-based calibration of the guide (Talts et al. 2018), and
  :func:`conformal_quantile`, a band's width calibrated on held-out cases (split
  conformal prediction);
* :func:`pareto_khat` — the Pareto k-hat diagnostic of importance weights (Vehtari
  et al. 2024);
* :func:`condition` — the posterior over z given partly observed rows and the posterior
  predictive of the missing entries (:data:`CONDITIONERS`, :class:`Completion`), with
  :func:`conditional_log_likelihood`, the importance-sampled log p(x_miss | x_obs).

Each module's docstring gives the estimator and its references. These functions take a
model family's module (``est.module_``), not an estimator, so that the estimators can
use them (``VAE.log_likelihood``, ``VAE.refine``, ...) and the analyses can build on
them.
"""

from . import conditioners  # noqa: F401 (registers the "svi" and "nuts" conditioners)
from .calibration import conformal_quantile, plot_rank_histograms, sbc
from .conditioning import CONDITIONERS, Completion, condition, conditional_log_likelihood
from .loglik import elbo_decomposition, elbo_terms, log_likelihood, mutual_information
from .mcmc import refine
from .psis import pareto_khat

__all__ = [
    "CONDITIONERS",
    "Completion",
    "condition",
    "conditional_log_likelihood",
    "conformal_quantile",
    "elbo_decomposition",
    "elbo_terms",
    "log_likelihood",
    "mutual_information",
    "pareto_khat",
    "plot_rank_histograms",
    "refine",
    "sbc",
]
