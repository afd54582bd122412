r"""The inference gap split into its amortization and approximation parts (Cremer et al. 2018).

    log p(x) - ELBO[q_amortized] = (log p(x) - ELBO[q*]) + (ELBO[q*] - ELBO[q_amortized])
                                    approximation gap      amortization gap

q* is the best diagonal Gaussian for each data point on its own: its mean and log
standard deviation are optimised by Adam on that point's ELBO (reparameterized,
``particles`` samples per step), starting from the encoder's output, with the
decoder and prior fixed. The amortization gap is what the shared encoder loses
against per-point optimisation; the approximation gap is what the Gaussian family
loses against the exact posterior.
"""

from __future__ import annotations

import math

import torch

from ..errors import ConfigError
from .loglik import log_likelihood


def _elbo(module, x, loc, log_scale, particles):
    eps = torch.randn(particles, *loc.shape, device=loc.device)
    scale = log_scale.exp()
    z = loc + scale * eps
    log_q = (-0.5 * eps**2 - log_scale - 0.5 * math.log(2 * math.pi)).sum(-1)
    log_p = module.prior_distribution().log_prob(z) + module.decode(z).log_prob(x)
    return (log_p - log_q).mean(0)  # (n,)


def inference_gaps(
    module,
    x: torch.Tensor,
    steps: int = 300,
    lr: float = 1e-2,
    particles: int = 16,
    eval_particles: int = 1000,
    samples: int = 2000,
) -> dict:
    """Per-data-point log p(x), ELBO of the guide, ELBO of per-point optimised q*, and gaps.

    Needs a model with one latent site and a factorized Normal-like guide
    (``module.prior_distribution``, ``module.decode``, ``encode(x).mean/.stddev``).
    """
    if not hasattr(module, "prior_distribution") or not getattr(module, "has_latent_sites", 0):
        raise ConfigError("inference gaps need a VAE with one latent layer")
    was_training = module.training
    module.eval()
    params = list(module.parameters())
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        with torch.no_grad():
            q = module.encode(x)
            loc0, ls0 = q.mean.clone(), q.stddev.clamp_min(1e-6).log()
            elbo_amortized = torch.stack(
                [_elbo(module, x, loc0, ls0, eval_particles // 10) for _ in range(10)]
            ).mean(0)
        loc, ls = loc0.clone().requires_grad_(True), ls0.clone().requires_grad_(True)
        opt = torch.optim.Adam([loc, ls], lr=lr)
        for _ in range(int(steps)):
            opt.zero_grad()
            (-_elbo(module, x, loc, ls, particles).sum()).backward()
            opt.step()
        with torch.no_grad():
            elbo_opt = torch.stack(
                [_elbo(module, x, loc, ls, eval_particles // 10) for _ in range(10)]
            ).mean(0)
    finally:
        for p, f in zip(params, flags, strict=True):
            p.requires_grad_(f)
        module.train(was_training)
    ll = log_likelihood(module, x, samples=samples)
    return {
        "log_likelihood": ll,
        "elbo_amortized": elbo_amortized,
        "elbo_optimized": elbo_opt,
        "amortization_gap": elbo_opt - elbo_amortized,
        "approximation_gap": ll - elbo_opt,
        "summary": {
            "log_likelihood": float(ll.mean()),
            "elbo_amortized": float(elbo_amortized.mean()),
            "elbo_optimized": float(elbo_opt.mean()),
            "amortization_gap": float((elbo_opt - elbo_amortized).mean()),
            "approximation_gap": float((ll - elbo_opt).mean()),
        },
    }
