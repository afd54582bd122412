r"""The ELBO with discrete guide sites summed out exactly: Pyro's ``TraceEnum_ELBO``.

A guide site marked ``infer={"enumerate": "parallel"}`` (what ``config_enumerate``
sets) is not sampled: Pyro's enumeration handler gives it all of its values at once,
in a tensor dimension of its own left of the plates (``max_plate_nesting = 1``: the
data plate is dim -1, the first enumerated site dim -2), and every later site of the
guide and the model is computed for all of them in one batched call. ``TraceEnum_ELBO``
then weights the terms that depend on the site by its guide probabilities (the DiCE
estimator, Foerster et al. 2018), so that for a discrete y with guide q(y|x) and the
continuous sites z drawn given each value,

.. math::  \mathrm{ELBO}(x) = \sum_y q(y|x) \big( \log p(x, y, z_y) - \log q(z_y | x, y)
           - \log q(y|x) \big), \qquad z_y \sim q(z | x, y),

exactly in y and by Monte Carlo in z (Kingma et al. 2014, eq. 7, with y summed out
instead of sampled). The gradient of the sum is exact in y too: no score-function term
for it.

The per-data-point terms of :class:`~pyrovae.objectives.LossTerms` are read from the same
traces: with w_n(y) the product of the guide probabilities of the enumerated sites (1
where nothing is enumerated),

* ``recon`` = :math:`\sum_y w_n(y) \log p(x_n | y, z_y)` (the ``sites.OBS`` site),
* ``kl`` = :math:`\sum_y w_n(y) \sum_s (\log q_s - \log p_s)` over the model's latent
  sites s (for an enumerated label this is KL(q(y|x) || p(y))), minus the log density of
  the model's other observed sites (an observed label's -log p(y), the KL of a point
  mass at it from p(y)); masked entries count zero, and factors (``pyro.factor``, such as
  an auxiliary classification term) are part of the loss but of neither term,

so that ``recon - kl`` is the ELBO above (beta = 1).

References
----------
Kingma, D. P., Rezende, D. J., Mohamed, S. & Welling, M. (2014). Semi-supervised learning
with deep generative models. NeurIPS.
Foerster, J. et al. (2018). DiCE: the infinitely differentiable Monte Carlo estimator.
ICML.
Obermeyer, F. et al. (2019). Tensor variable elimination for plated factor graphs. ICML.
"""

from __future__ import annotations

import math
import warnings

import torch
from pyro.distributions import Unit
from pyro.infer import TraceEnum_ELBO
from pyro.infer.util import is_validation_enabled

from .. import sites
from ..data.batch import Batch
from . import OBJECTIVES
from .base import LossTerms, zero_terms
from .elbo import PyroELBO


class EnumTerms(TraceEnum_ELBO):
    """Pyro's ``TraceEnum_ELBO`` that also hands out the traces its loss was computed from."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._recorded: list | None = None

    def loss_and_traces(self, model, guide, *args, **kwargs) -> tuple[torch.Tensor, list]:
        """Minus the ELBO (differentiable where gradients are enabled, else a detached
        tensor) and the (model trace, guide trace) of each particle it averages."""
        self._recorded = []
        try:
            if torch.is_grad_enabled():
                loss = self.differentiable_loss(model, guide, *args, **kwargs)
            else:
                loss = torch.tensor(float(self.loss(model, guide, *args, **kwargs)))
            return loss, self._recorded
        finally:
            recorded, self._recorded = self._recorded, None
            del recorded

    def _get_traces(self, model, guide, args, kwargs):
        for model_trace, guide_trace in super()._get_traces(model, guide, args, kwargs):
            if self._recorded is not None:
                self._recorded.append((model_trace, guide_trace))
            yield model_trace, guide_trace


def _masked(site: dict, log_p: torch.Tensor) -> torch.Tensor:
    mask = site.get("mask")
    if mask is None or mask is True:
        return log_p
    if mask is False:
        return torch.zeros_like(log_p)
    return torch.where(mask, log_p, torch.zeros((), dtype=log_p.dtype, device=log_p.device))


def _per_row(weight: torch.Tensor | None, term: torch.Tensor, rows: int) -> torch.Tensor:
    """``sum over the enumerated dims of weight * term``, shape ``(rows,)``."""
    if weight is not None:
        term = weight * term
    return term.reshape(-1, rows).sum(0) if term.dim() else term.expand(rows)


def enumerated_terms(model_trace, guide_trace, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row (recon, kl) of one particle's traces (see the module docstring)."""
    weight = None
    for site in guide_trace.nodes.values():
        if site["type"] == "sample" and site["infer"].get("enumerate") == "parallel":
            log_q = site["unscaled_log_prob"]
            weight = log_q if weight is None else weight + log_q
    if weight is not None:
        weight = weight.exp()
    recon = kl = None
    for name, site in model_trace.nodes.items():
        if site["type"] != "sample" or isinstance(site["fn"], Unit):
            continue
        log_p = _masked(site, site["unscaled_log_prob"])
        if name == sites.OBS:
            recon = _per_row(weight, log_p, rows)
            continue
        if site["is_observed"]:
            term = -log_p
        else:
            guide_site = guide_trace.nodes[name]
            term = _masked(guide_site, guide_site["unscaled_log_prob"]) - log_p
        term = _per_row(weight, term, rows)
        kl = term if kl is None else kl + term
    return recon, kl


@OBJECTIVES.register("enum")
class EnumELBO(PyroELBO):
    """Pyro's ``TraceEnum_ELBO``: the trace ELBO with the guide's enumerated discrete
    sites summed out exactly (the same as ``trace`` for a model without any)."""

    elbo_class = EnumTerms
    enumerates = True
    enumerated = "enum"

    def __init__(
        self, num_particles: int = 1, always_validate: bool = False, direct: bool = False
    ) -> None:
        # always the traces: the enumerated sums have no direct form here
        super().__init__(num_particles, always_validate, direct=False)
        self.elbo = EnumTerms(
            num_particles=self.num_particles,
            max_plate_nesting=1,
            strict_enumeration_warning=False,
        )

    def _first_call(self, key, model, guide, batch: Batch, beta: float) -> LossTerms:
        """The first call of a structure: validated traces; later calls run the traces
        too (no direct route to compare, nothing to log)."""
        terms = self._evaluate(model, guide, batch, beta, validate=is_validation_enabled())
        self._direct[key] = False
        return terms

    def _evaluate(self, model, guide, batch: Batch, beta: float, validate: bool) -> LossTerms:
        loss, traces = self.elbo.loss_and_traces(model, guide, batch, beta=beta)
        if not validate and not is_validation_enabled() and math.isnan(float(loss.detach())):
            warnings.warn("Encountered NaN: loss", stacklevel=4)
        rows = len(batch)
        recon = kl = None
        with torch.no_grad():
            for model_tr, guide_tr in traces:
                r, k = enumerated_terms(model_tr, guide_tr, rows)
                if r is not None:
                    recon = r if recon is None else recon + r
                if k is not None:
                    kl = k if kl is None else kl + k
        n = len(traces)
        recon = zero_terms(batch) if recon is None else (recon / n).detach()
        kl = zero_terms(batch) if kl is None else (kl / n).detach()
        return LossTerms(loss, recon, kl)
