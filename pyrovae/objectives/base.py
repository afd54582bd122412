r"""The contract every objective keeps: ``objective(model, guide, batch, beta) -> LossTerms``.

An objective estimates minus a (beta-weighted) evidence lower bound of a minibatch,
summed over its rows, from the Pyro programs ``model`` and ``guide``. It passes the
batch (a :class:`~pyrovae.data.Batch`; a bare tensor is wrapped by
:func:`~pyrovae.data.as_batch`) and ``beta`` (the KL weight the schedule gives for this
step; 1 outside training) to both programs, as ``model(batch, beta=beta)``, and returns
:class:`LossTerms`: the differentiable loss and, per data point, the reconstruction
term log p(x_n|z) and the KL term KL(q(z|x_n) || p(z)), unscaled by beta, read from the
same traces (no extra forward pass). A global latent site (outside the data plate: the
Bayesian decoder's weights θ) adds its share KL(q(θ) || p(θ)) / N to every data point's
KL term, N the size of the batch's data set (:func:`per_point`).

An objective that cannot score global sites (the importance-weighted bounds, whose
particles plate would draw θ per particle) sets ``global_sites = False``; the
estimators refuse it with a model that has them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.distributions import kl_divergence

from .. import sites
from ..data.batch import Batch, as_batch


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


class Objective:
    """Base class of the objectives (the module docstring states the contract).

    Subclasses implement :meth:`loss_terms`; calling the objective wraps the batch and
    forwards to it.

    Attributes
    ----------
    num_particles : int
        Monte Carlo samples (or importance samples) per data point.
    analytic_kl : bool
        Whether the reported KL term is analytic where ``torch.distributions`` has it.
    enumerates : bool
        Whether the objective sums the guide's enumerated discrete sites out exactly
        (``TraceEnum_ELBO``) rather than sampling them.
    enumerated : str or None
        The registered name of the objective that computes this one's bound with the
        discrete sites summed out (itself where it enumerates), or None where there is
        none: a family whose labels must be summed out (M2) trains with that one.
    """

    registry_name = "custom"
    num_particles: int = 1
    analytic_kl: bool = False
    #: Whether the objective handles global latent sites (module docstring).
    global_sites: bool = True
    enumerates: bool = False
    enumerated: str | None = None

    def __call__(self, model, guide, batch: Batch | torch.Tensor, beta: float = 1.0) -> LossTerms:
        return self.loss_terms(model, guide, as_batch(batch), beta)

    def loss_terms(
        self, model, guide, batch: Batch, beta: float
    ) -> LossTerms:  # pragma: no cover - abstract
        """The loss and its terms on ``batch``, with both programs run at ``beta``."""
        raise NotImplementedError

    def to_dict(self) -> dict:
        """Plain data for configs and checkpoints."""
        return {"objective": self.registry_name, "num_particles": self.num_particles}


def zero_terms(batch: Batch) -> torch.Tensor:
    """A ``(B,)`` zero term, for a model without sites of that kind."""
    x = batch.x
    return torch.zeros(x.shape[0], device=x.device)


def is_global(site: dict) -> bool:
    """Whether a trace site lies outside the data plate (a global latent such as the
    Bayesian decoder's weights)."""
    return all(frame.name != sites.DATA_PLATE for frame in site["cond_indep_stack"])


def per_point(term: torch.Tensor, site: dict, batch: Batch) -> torch.Tensor:
    """A site's term per data point: as it is for a site in the data plate; for a global
    site, its share 1/N of the data set of ``batch`` (see :mod:`pyrovae.data.batch`), so
    that the mean of the terms over an epoch counts it once per data set."""
    if is_global(site):
        return term / batch.n
    return term


def site_kl(model_site: dict, guide_site: dict, analytic: bool) -> torch.Tensor:
    """Per-datapoint KL of one latent site from its model and guide trace entries
    (unscaled): analytic where asked and registered, else log q - log p at the draw."""
    if analytic:
        try:
            return kl_divergence(guide_site["fn"], model_site["fn"])
        except NotImplementedError:
            pass
    return guide_site["unscaled_log_prob"] - model_site["unscaled_log_prob"]
