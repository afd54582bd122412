r"""Conditioners that fit the posterior p(z | x_obs) per row with the networks frozen:
``"svi"`` (a per-datum variational posterior) and ``"nuts"`` (MCMC), registered in
:data:`~pyrovae.inference.conditioning.CONDITIONERS` (see that module for the protocol).

Both run the family's own Pyro model on the masked rows (a batch with the mask and, for
a conditional family, the rows' conditions), whose observation site scores only the
observed entries, so that the target is the exact posterior

.. math::  p(z \mid x_{\mathrm{obs}}) \propto p(z)\, p(x_{\mathrm{obs}} \mid z)

of the trained model (every latent site of a hierarchical family). The networks are
frozen (``requires_grad`` off, eval mode; nothing is registered with ``pyro.module``)
and restored afterwards; the global random state is left as it was.

* ``"svi"``: per row and latent site a Gaussian q(z) = N(m, diag s^2) with free m and s
  (the family of the default diagonal guide, not amortized: the "semi-amortized" or
  per-datum refinement of Kim et al. 2018 and Hjelm et al. 2016), initialised at the
  amortized guide's means and sds on the masked row (its posterior moments given the
  mask), then fitted by stochastic gradient ascent on the ELBO of the masked model
  (Adam, ``steps`` steps of step size ``lr`` decaying geometrically to ``lr / 100``,
  ``particles`` reparameterized draws per step; Kingma & Welling 2014). Draws come from
  the fitted q; diagnostics report the final ELBO estimate per row. For a Gaussian
  posterior with precision Λ the optimum has the exact mean and sds
  :math:`1 / \sqrt{\Lambda_{ii}}` (smaller than the marginal sds when the coordinates are
  correlated: mean-field variational inference underestimates the spread; Bishop 2006,
  sec. 10.1.2).
* ``"nuts"``: the No-U-Turn sampler (Hoffman & Gelman 2014; Pyro's implementation) on the
  latent sites of one row at a time, ``chains`` independent chains of ``warmup`` warm-up
  and ``ceil(draws / chains)`` kept iterations each; diagnostics report the split R-hat
  and the effective sample size of each latent coordinate (Gelman et al. 2013, ch. 11;
  Pyro's ``split_gelman_rubin`` and ``effective_sample_size``) and the number of
  divergent transitions per row.

References
----------
Hoffman & Gelman (2014), The No-U-Turn sampler, JMLR 15.
Kim, Wiseman, Miller, Sontag & Rush (2018), Semi-amortized variational autoencoders, ICML.
Hjelm, Salakhutdinov, Cho, Jojic, Calhoun & Chung (2016), Iterative refinement of the
approximate posterior for directed belief networks, NeurIPS.
Bishop (2006), Pattern recognition and machine learning, ch. 10.
Gelman, Carlin, Stern, Dunson, Vehtari & Rubin (2013), Bayesian data analysis, 3rd ed.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import MCMC, NUTS, Trace_ELBO
from pyro.ops.stats import effective_sample_size, split_gelman_rubin
from torch.nn import functional as F

from .. import sites
from ..data.batch import Batch
from ..errors import ConfigError
from .conditioning import CONDITIONERS

#: Smallest scale of the per-row variational posterior (as the guides' heads).
MIN_SCALE = 1e-5
#: The SVI step size at the last step, as a fraction of the first.
LR_DECAY = 0.01
#: Draws of the final ELBO estimate reported by the SVI conditioner.
FINAL_PARTICLES = 64


@contextlib.contextmanager
def frozen(module):
    """``module`` in eval mode with ``requires_grad`` off for its parameters; both are
    restored on exit."""
    params = list(module.parameters())
    flags = [p.requires_grad for p in params]
    was_training = module.training
    module.eval()
    try:
        for p in params:
            p.requires_grad_(False)
        yield module
    finally:
        for p, f in zip(params, flags, strict=True):
            p.requires_grad_(f)
        module.train(was_training)


def _devices(x: torch.Tensor) -> list:
    return [x.device] if x.device.type == "cuda" else []


def _positive_int(name: str, value, least: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise ConfigError(f"{name} must be an integer >= {least}; got {value!r}")
    if int(value) < least:
        raise ConfigError(f"{name} must be an integer >= {least}; got {value!r}")
    return int(value)


def _no_unknown(method: str, unknown: dict, known: str) -> None:
    if unknown:
        raise ConfigError(
            f"method {method!r} takes the options {known}; got {', '.join(sorted(unknown))}"
        )


def _inverse_softplus(y: torch.Tensor) -> torch.Tensor:
    return y + torch.log(-torch.expm1(-y))


@CONDITIONERS.register("svi")
def svi_conditioner(
    module,
    batch: Batch,
    *,
    draws: int,
    seed: int = 0,
    steps: int = 500,
    lr: float = 0.05,
    particles: int = 4,
    **unknown: Any,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Per-row Gaussian posteriors fitted by SVI on the masked model (module docstring).

    Parameters
    ----------
    steps : int
        Adam steps (0: the amortized guide's moments, as a Gaussian).
    lr : float
        Adam step size.
    particles : int
        Reparameterized draws of z per step in the ELBO estimate.
    """
    _no_unknown("svi", unknown, "steps, lr, particles")
    steps = _positive_int("steps", steps, least=0)
    particles = _positive_int("particles", particles)
    if not float(lr) > 0:
        raise ConfigError(f"lr must be > 0; got {lr!r}")
    x = batch.x
    rows = x.shape[0]
    # conditioning runs under no_grad; SVI needs gradients with respect to q's parameters
    with frozen(module), torch.random.fork_rng(devices=_devices(x)), torch.enable_grad():
        torch.manual_seed(int(seed))
        with torch.no_grad():
            moments = module.posterior_moments(module.guide_input(batch), mask=batch.mask)
        loc = {s: m.mean.detach().clone().requires_grad_(True) for s, m in moments.items()}
        raw = {
            s: _inverse_softplus((m.sd.detach() - MIN_SCALE).clamp_min(1e-4)).requires_grad_(True)
            for s, m in moments.items()
        }

        def scales() -> dict[str, torch.Tensor]:
            return {s: F.softplus(r) + MIN_SCALE for s, r in raw.items()}

        def guide(batch: Batch, beta: float = 1.0) -> None:
            sd = scales()
            with pyro.plate(sites.DATA_PLATE, rows):
                for s in loc:
                    pyro.sample(s, dist.Normal(loc[s], sd[s]).to_event(1))

        elbo = Trace_ELBO(num_particles=particles, vectorize_particles=True, max_plate_nesting=1)
        optim = torch.optim.Adam([*loc.values(), *raw.values()], lr=float(lr))
        # the step size decays geometrically to LR_DECAY of lr over the steps, so that the
        # last iterates settle at the optimum rather than jitter around it
        decay = torch.optim.lr_scheduler.LambdaLR(optim, lambda t: LR_DECAY ** (t / max(1, steps)))
        with pyro.validation_enabled(False):
            for _ in range(steps):
                optim.zero_grad()
                loss = elbo.differentiable_loss(module.model, guide, batch)
                loss.backward()
                optim.step()
                decay.step()
            with torch.no_grad():
                final = Trace_ELBO(
                    num_particles=FINAL_PARTICLES, vectorize_particles=True, max_plate_nesting=1
                ).loss(module.model, guide, batch)
        with torch.no_grad():
            sd = scales()
            z = {s: dist.Normal(loc[s], sd[s]).sample((int(draws),)).detach() for s in loc}
    diagnostics = {
        "method": "svi",
        "steps": steps,
        "lr": float(lr),
        "particles": particles,
        "elbo_per_row": -float(final) / rows,
    }
    return z, diagnostics


@CONDITIONERS.register("nuts")
def nuts_conditioner(
    module,
    batch: Batch,
    *,
    draws: int,
    seed: int = 0,
    warmup: int = 500,
    chains: int = 2,
    jit: bool = False,
    full_mass: bool = False,
    progress: bool = False,
    **unknown: Any,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """NUTS on the latent sites of each row of the masked model (module docstring).

    Parameters
    ----------
    warmup : int
        Warm-up (adaptation) iterations per chain.
    chains : int
        Independent chains per row, run one after the other; ``draws`` are split
        between them (``ceil(draws / chains)`` each, the first ``draws`` kept).
    jit : bool
        Compile the potential energy with ``torch.jit`` (Pyro's ``jit_compile``; once
        per row and chain).
    full_mass : bool
        Adapt a dense mass matrix instead of a diagonal one.
    progress : bool
        Show Pyro's progress bar of each chain.
    """
    _no_unknown("nuts", unknown, "warmup, chains, jit, full_mass, progress")
    warmup = _positive_int("warmup", warmup, least=0)
    chains = _positive_int("chains", chains)
    per_chain = math.ceil(int(draws) / chains)
    out: dict[str, list[torch.Tensor]] = {}
    rhat, ess, divergences = [], [], []
    # conditioning runs under no_grad; NUTS needs gradients with respect to z
    x = batch.x
    with frozen(module), torch.random.fork_rng(devices=_devices(x)), torch.enable_grad():
        for i in range(x.shape[0]):
            row = batch[i : i + 1]

            def model(row=row) -> None:
                module.model(row)

            runs, div = [], 0
            for c in range(chains):
                torch.manual_seed(int(seed) + 7919 * i + c)
                kernel = NUTS(
                    model, jit_compile=bool(jit), ignore_jit_warnings=True, full_mass=full_mass
                )
                mcmc = MCMC(
                    kernel,
                    num_samples=per_chain,
                    warmup_steps=warmup,
                    disable_progbar=not progress,
                )
                mcmc.run()
                runs.append({s: v.detach()[:, 0] for s, v in mcmc.get_samples().items()})
                found = mcmc.diagnostics().get("divergences", {})
                div += int(sum(len(v) for v in found.values()))
            row_rhat, row_ess = [], []
            for s in runs[0]:
                stacked = torch.stack([r[s] for r in runs])  # (chains, per_chain, dim)
                out.setdefault(s, []).append(stacked.reshape(-1, stacked.shape[-1])[: int(draws)])
                if chains > 1:
                    row_rhat.append(split_gelman_rubin(stacked, chain_dim=0, sample_dim=1))
                row_ess.append(effective_sample_size(stacked, chain_dim=0, sample_dim=1))
            rhat.append(float(torch.cat(row_rhat).max()) if row_rhat else math.nan)
            ess.append(float(torch.cat(row_ess).min()))
            divergences.append(div)
    z = {s: torch.stack(v, dim=1) for s, v in out.items()}  # (S, B, dim)
    diagnostics = {
        "method": "nuts",
        "warmup": warmup,
        "chains": chains,
        "draws_per_chain": per_chain,
        "max_rhat": rhat,
        "min_ess": ess,
        "divergences": divergences,
        "summary": {
            "max_rhat": max(rhat) if chains > 1 else math.nan,
            "min_ess": min(ess),
            "divergences": int(sum(divergences)),
        },
    }
    return z, diagnostics


#: NUTS draws every sample site of the program it is given, not only the family's own
#: latent sites (:func:`~pyrovae.inference.conditioning.condition` checks this before
#: conditioning a program with extra sites, such as an inferred discrepancy scale).
nuts_conditioner.samples_every_site = True
