"""A fitted estimator's decoder as a prior inside the user's own Pyro model (PriorVAE;
Semenova et al. 2022); see :mod:`pyrovae.inference.priorvae`."""

from __future__ import annotations

from ..errors import ConfigError
from ..inference.priorvae import DecoderPrior

#: Where the prior's output is expressed: the data's own units (undoing the scaling the
#: run was trained with, ``--scale``) or the model's (scaled) units.
UNITS = ("data", "model")


def prior_module(est, name: str, output: str = "mean", units: str = "data") -> DecoderPrior:
    """The fitted ``est``'s prior over data as a Pyro-callable for another model.

    Each call samples ``z ~ p(z)`` (the model's own prior) at the site ``f"{name}_z"``,
    decodes it with a frozen copy of the trained networks (never registered with Pyro's
    parameter store) and returns the chosen output of p(x|z), recorded as the
    deterministic site ``f"{name}_f"``::

        prior = pyrovae.prior_module(vae, "gp")

        def model(idx, y=None):
            f = prior()                                   # (100,), one function
            pyro.sample("y", dist.Normal(f[idx], 0.1).to_event(1), obs=y)

        MCMC(NUTS(model, jit_compile=True), 500, warmup_steps=500).run(idx, y)

    Parameters
    ----------
    est : VAE or HVAE
        A fitted estimator with latent variables.
    name : str
        Prefix of the sites.
    output : str
        ``"mean"`` (E[x|z]), ``"stddev"``, or a parameter of the likelihood's
        distribution (``"loc"``, ``"scale"``, ``"probs"``, ...).
    units : {"data", "model"}
        ``"data"``: a run trained on scaled data (``--scale standardize`` or
        ``minmax``) returns the mean, loc, stddev or scale in the data's own units; the
        same as ``"model"`` for an unscaled run.

    Returns
    -------
    DecoderPrior
    """
    est._check_fitted()
    if units not in UNITS:
        raise ConfigError(f"units must be one of {', '.join(UNITS)}; got {units!r}")
    state = getattr(est, "data_info_", {}).get("scaler") or {}
    shift, scale = state.get("shift"), state.get("scale")
    if units == "model" or scale is None:
        shift = scale = None
    return DecoderPrior(est.module_, name, output=output, shift=shift, scale=scale)
