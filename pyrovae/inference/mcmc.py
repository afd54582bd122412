r"""MCMC refinement of the latent codes: NUTS on p(z | x) with the trained decoder fixed.

The amortized guide q(z|x) is an approximation. For chosen inputs, NUTS (Hoffman &
Gelman 2014, Pyro's implementation) samples the exact posterior
p(z | x) ∝ p(z) p(x | decoder(z)) of the same Pyro model with every network
parameter frozen (``requires_grad`` off for the run; nothing is registered with
``pyro.module``). Several independent chains give R-hat and effective sample
sizes through ArviZ. The guide is then compared with the MCMC posterior, per data
point and latent dimension of the code z the decoder reads, through the guide's joint
posterior (``module.posterior_moments`` and ``module.posterior_sample``; for a
hierarchical VAE, q(z|x) is the marginal of the guide's two layers):

* ``mean_error``: (E_q[z] - E_mcmc[z]) / sd_mcmc[z], in posterior standard deviations;
* ``sd_ratio``: sd_q[z] / sd_mcmc[z] (below 1: the guide is overconfident);
* ``coverage``: the share of MCMC draws inside the guide's central 90 % interval, the
  5 % and 95 % quantiles of ``guide_draws`` guide draws (0.90 if the guide's marginals
  are right);
* ``khat``: Pareto k-hat of the guide as importance proposal (:mod:`.psis`).
"""

from __future__ import annotations

import math

import numpy as np
import pyro
import torch
from pyro.infer import MCMC, NUTS

from .. import arviz_compat, sites
from ..errors import ConfigError
from ..models import at_weights
from ..models.base import require_latent_variables
from .loglik import _log_weights_chunk
from .psis import pareto_khat


def _nuts_chain(module, x, num_samples: int, warmup: int, seed: int, jit: bool, progress):
    """One NUTS chain on z given ``x``: its draws of ``z`` and its number of divergences."""
    pyro.set_rng_seed(seed)
    kernel = NUTS(module.model, jit_compile=jit, ignore_jit_warnings=True)
    mcmc = MCMC(kernel, num_samples=num_samples, warmup_steps=warmup, disable_progbar=not progress)
    mcmc.run(x)
    div = mcmc.diagnostics().get("divergences", {})
    return mcmc.get_samples()[sites.LATENT].detach(), int(sum(len(v) for v in div.values()))


def refine(
    module,
    x: torch.Tensor,
    num_samples: int = 300,
    warmup: int = 300,
    chains: int = 2,
    seed: int = 0,
    khat_samples: int = 1000,
    jit: bool = False,
    guide_draws: int = 1000,
    progress: bool = False,
) -> dict:
    """Run NUTS on z for inputs ``x`` and compare the guide with it.

    ``guide_draws`` joint draws from the guide give its 90 % intervals, and its moments
    where they have no closed form (``module.posterior_moments``). ``progress`` shows
    Pyro's progress bar of each chain (warm-up, then sampling).

    Returns
    -------
    dict
        ``draws`` (Tensor ``(chains, num_samples, n, L)``), ``divergences`` (per
        chain), ``rhat`` and ``ess_bulk`` (``(n, L)`` arrays), ``mean_error``,
        ``sd_ratio``, ``coverage`` (``(n, L)``), ``khat`` (``(n,)``) and a
        ``summary`` of scalars (maxima and means).
    """
    require_latent_variables(module, "MCMC refinement")
    if chains < 1 or num_samples < 1 or warmup < 0:
        raise ConfigError("chains and num_samples must be >= 1, warmup >= 0")
    params = list(module.parameters())
    flags = [p.requires_grad for p in params]
    was_training = module.training
    module.eval()
    # a Bayesian decoder at the posterior mean of its weights: NUTS on z only
    with at_weights(module):
        try:
            for p in params:
                p.requires_grad_(False)
            runs = [
                _nuts_chain(module, x, num_samples, warmup, seed + c, jit, progress)
                for c in range(chains)
            ]
            per_chain, divergences = [r[0] for r in runs], [r[1] for r in runs]
            with torch.no_grad():
                q_mean, q_sd = module.posterior_moments(x, guide_draws)[sites.LATENT]
                zq = module.posterior_sample(x, guide_draws)[sites.LATENT]  # (draws, n, L)
                lo, hi = torch.quantile(zq, zq.new_tensor([0.05, 0.95]), dim=0)
                log_w = _log_weights_chunk(module, x, khat_samples)
        finally:
            for p, f in zip(params, flags, strict=True):
                p.requires_grad_(f)
            module.train(was_training)
    draws = torch.stack(per_chain)  # (chains, S, n, L)
    data = arviz_compat.from_groups(
        {"posterior": {"z": draws.numpy()}}, dims={"z": ["datum", "latent"]}
    )
    az = arviz_compat.arviz()
    rhat = np.asarray(az.rhat(data)["z"].values)
    ess = np.asarray(az.ess(data)["z"].values)
    flat = draws.reshape(-1, *draws.shape[2:])
    mc_mean, mc_sd = flat.mean(0), flat.std(0)
    coverage = ((flat >= lo) & (flat <= hi)).float().mean(0)
    mean_error = (q_mean - mc_mean) / mc_sd
    sd_ratio = q_sd / mc_sd
    khat = pareto_khat(log_w)
    return {
        "draws": draws,
        "divergences": divergences,
        "rhat": rhat,
        "ess_bulk": ess,
        "mean_error": mean_error.numpy(),
        "sd_ratio": sd_ratio.numpy(),
        "coverage": coverage.numpy(),
        "khat": khat,
        "summary": {
            "chains": chains,
            "num_samples": num_samples,
            "max_rhat": float(np.nanmax(rhat)),
            "min_ess_bulk": float(np.nanmin(ess)),
            "divergences": int(sum(divergences)),
            "mean_abs_mean_error": float(mean_error.abs().mean()),
            "mean_sd_ratio": float(sd_ratio.mean()),
            "mean_coverage_90": float(coverage.mean()),
            "max_khat": float(np.max(khat)) if khat.size else math.nan,
        },
    }
