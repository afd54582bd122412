r"""ELBO objectives built on Pyro's estimators.

For a minibatch x_1..x_B the objectives return

    loss = -sum_n ( E_q[log p(x_n|z)] - beta * KL(q(z|x_n) || p(z)) )

as a differentiable (surrogate) tensor computed by Pyro's
``Trace_ELBO`` (Monte Carlo KL; Wingate & Weber 2013, Ranganath et al. 2014)
or ``TraceMeanField_ELBO`` (analytic KL where ``torch.distributions`` has one
registered, Monte Carlo otherwise). beta enters through ``poutine.scale`` on the
latent site in model and guide (see :mod:`pyrovae.models.vae`).

Alongside the loss, :class:`Objective` reports the per-datapoint
reconstruction term log p(x_n|z) and the *unscaled* KL term (analytic where
the objective uses it, else the single-sample estimate log q - log p), read
from the same model and guide traces, so the decomposition costs no extra
forward pass.

We call Pyro's ``_get_traces`` / ``_differentiable_loss_particle`` (the two
halves of ``Trace_ELBO.differentiable_loss``) directly so that one pass yields
both the loss and its terms; ``tests/objectives`` checks the loss equals
``differentiable_loss`` exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from torch.distributions import kl_divergence

from . import OBJECTIVES


@dataclass
class LossTerms:
    """Output of an objective on a minibatch.

    Attributes
    ----------
    loss : Tensor
        Differentiable scalar: minus the (beta-weighted) ELBO summed over the batch.
    recon : Tensor
        Detached ``(B,)``: reconstruction term log p(x_n|z) per datapoint.
    kl : Tensor
        Detached ``(B,)``: KL(q(z|x_n) || p(z)) per datapoint, unscaled by beta.
    """

    loss: torch.Tensor
    recon: torch.Tensor
    kl: torch.Tensor

    @property
    def elbo(self) -> torch.Tensor:
        """Per-datapoint ELBO = recon - KL (beta = 1), detached."""
        return self.recon - self.kl


def _site_kl(model_site: dict, guide_site: dict, analytic: bool) -> torch.Tensor:
    """Per-datapoint KL of one latent site (unscaled)."""
    if analytic:
        try:
            return kl_divergence(guide_site["fn"], model_site["fn"])
        except NotImplementedError:
            pass
    return guide_site["unscaled_log_prob"] - model_site["unscaled_log_prob"]


class Objective:
    """A Pyro ELBO estimator that also returns the ELBO's terms.

    Parameters
    ----------
    num_particles : int
        Monte Carlo samples per datapoint (averaged).
    """

    elbo_class: type = Trace_ELBO
    analytic_kl: bool = False

    def __init__(self, num_particles: int = 1) -> None:
        self.num_particles = int(num_particles)
        self.elbo = self.elbo_class(num_particles=self.num_particles, max_plate_nesting=1)

    def __call__(self, model, guide, x: torch.Tensor) -> LossTerms:
        loss = 0.0
        recon = 0.0
        kl = 0.0
        for model_tr, guide_tr in self.elbo._get_traces(model, guide, (x,), {}):
            value, surrogate = self.elbo._differentiable_loss_particle(model_tr, guide_tr)
            # value of the ELBO with the gradient of the surrogate (as differentiable_loss)
            loss = loss + (surrogate + (float(value) - surrogate.detach()))
            with torch.no_grad():
                for name, site in model_tr.nodes.items():
                    if site["type"] != "sample":
                        continue
                    if site["is_observed"]:
                        recon = recon + site["unscaled_log_prob"]
                    else:
                        kl = kl + _site_kl(site, guide_tr.nodes[name], self.analytic_kl)
        n = self.num_particles
        zeros = torch.zeros(x.shape[0], device=x.device)
        recon = (recon / n if torch.is_tensor(recon) else zeros).detach()
        kl = (kl / n if torch.is_tensor(kl) else zeros).detach()
        return LossTerms(loss / n, recon, kl)

    def to_dict(self) -> dict:
        return {"objective": self.registry_name, "num_particles": self.num_particles}

    registry_name = "custom"


@OBJECTIVES.register("trace")
class TraceELBO(Objective):
    """Pyro's ``Trace_ELBO``: Monte Carlo ELBO, reparameterized gradients."""

    elbo_class = Trace_ELBO


@OBJECTIVES.register("meanfield")
class MeanFieldELBO(Objective):
    """Pyro's ``TraceMeanField_ELBO``: analytic KL where registered."""

    elbo_class = TraceMeanField_ELBO
    analytic_kl = True
