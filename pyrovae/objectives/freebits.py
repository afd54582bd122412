r"""Free bits (Kingma et al. 2016): a floor on the KL of each latent dimension.

With per-dimension KL terms KL_j(x) = KL(q(z_j|x) || p(z_j)) of a factorized
guide and prior, the objective on a minibatch of B points is

    sum_n E_q[log p(x_n|z)] - beta * B * sum_j max(lambda, (1/B) sum_n KL_j(x_n)),

so a dimension whose average KL is below lambda nats feels no pressure to
collapse onto the prior (a guard against posterior collapse). With lambda = 0
it is the ELBO. KL_j is analytic where ``torch.distributions`` has it, else the
single-sample estimate log q(z_j|x) - log p(z_j).
"""

from __future__ import annotations

import torch
from pyro.distributions import Independent
from torch.distributions import kl_divergence

from ..data.batch import Batch
from ..errors import ConfigError
from . import OBJECTIVES
from .base import LossTerms, site_kl, zero_terms
from .elbo import TraceELBO


def _base(d, who: str):
    if isinstance(d, Independent) and d.reinterpreted_batch_ndims == 1:
        return d.base_dist
    raise ConfigError(
        f"free bits needs a factorized {who} (independent per latent dimension); "
        "use the normal guide and a normal, learned, laplace or student-t prior"
    )


def per_dimension_kl(guide_fn, model_fn, z: torch.Tensor) -> torch.Tensor:
    """KL per data point and latent dimension, shape (B, D)."""
    q, p = _base(guide_fn, "guide"), _base(model_fn, "prior")
    try:
        return kl_divergence(q, p)
    except NotImplementedError:
        return q.log_prob(z) - p.log_prob(z)


@OBJECTIVES.register("freebits")
class FreeBitsELBO(TraceELBO):
    """ELBO with a floor ``free_bits`` (nats, default 0.5) on each dimension's average KL."""

    analytic_kl = True
    needs_mean_field = True  # per-site analytic KLs
    #: the floor is per latent dimension of the data plate's sites
    global_sites = False

    def __init__(self, num_particles: int = 1, free_bits: float = 0.5) -> None:
        super().__init__(num_particles)
        if not float(free_bits) >= 0:
            raise ConfigError(f"free_bits must be >= 0 nats; got {free_bits}")
        self.free_bits = float(free_bits)

    def _evaluate(self, model, guide, batch: Batch, beta: float, validate: bool) -> LossTerms:
        n = self.num_particles
        rows = len(batch)
        loss = recon = kl = 0.0
        for model_tr, guide_tr in self.elbo.traces(model, guide, batch, beta=beta):
            for name, site in model_tr.nodes.items():
                if site["type"] != "sample":
                    continue
                if site["is_observed"]:
                    loss = loss - site["log_prob_sum"]
                    recon = recon + site["unscaled_log_prob"].detach()
                    continue
                g = guide_tr.nodes[name]
                kl_bd = per_dimension_kl(g["fn"], site["fn"], g["value"])
                floored = kl_bd.mean(0).clamp(min=self.free_bits).sum() * rows
                loss = loss + g["scale"] * floored
                kl = kl + site_kl(site, g, True).detach()
        recon = recon / n if torch.is_tensor(recon) else zero_terms(batch)
        kl = kl / n if torch.is_tensor(kl) else zero_terms(batch)
        return LossTerms(loss / n, recon, kl)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "free_bits": self.free_bits}
