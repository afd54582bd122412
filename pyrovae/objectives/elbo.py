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

import math
import warnings
from dataclasses import dataclass

import pyro
import torch
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from pyro.infer.util import is_validation_enabled, torch_item
from pyro.util import warn_if_nan
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
    always_validate : bool
        Run every call with Pyro's validation checks (if Pyro's validation is
        enabled globally). By default only the first call for each model, guide
        and input shape is validated; see Notes.

    Notes
    -----
    Pyro's validation (distribution argument and support checks, model/guide
    site matching, site shape checks, NaN/inf checks with backward hooks on
    every ``log_prob_sum``) costs a noticeable share of a small training step.
    Everything it checks about the *structure* of the programs is decided by
    the first call for a given (model, guide, input shape), so later calls run
    under ``pyro.validation_enabled(False)``, which also switches off
    ``torch.distributions``' default argument validation for the duration of
    the call. A NaN loss still triggers Pyro's ``"Encountered NaN: loss"``
    warning on every call; NaN *gradients* are only reported by validated
    calls. Values and gradients are identical either way. Set
    ``always_validate=True`` (or disable validation globally with
    ``pyro.enable_validation(False)``) to change this.
    """

    elbo_class: type = Trace_ELBO
    analytic_kl: bool = False

    def __init__(self, num_particles: int = 1, always_validate: bool = False) -> None:
        self.num_particles = int(num_particles)
        self.always_validate = bool(always_validate)
        self.elbo = self.elbo_class(num_particles=self.num_particles, max_plate_nesting=1)
        self._validated: set = set()

    def __call__(self, model, guide, x: torch.Tensor) -> LossTerms:
        if not is_validation_enabled():
            return self._evaluate(model, guide, x, validate=False)
        if self.always_validate:
            return self._evaluate(model, guide, x, validate=True)
        key = _call_key(model, guide, x)
        if key not in self._validated:
            terms = self._evaluate(model, guide, x, validate=True)
            self._validated.add(key)
            return terms
        with pyro.validation_enabled(False):
            return self._evaluate(model, guide, x, validate=False)

    def _evaluate(self, model, guide, x: torch.Tensor, validate: bool) -> LossTerms:
        """One pass of ``differentiable_loss``, also collecting the ELBO's terms.

        The loss is assembled exactly as ``Trace_ELBO.differentiable_loss``
        does (the particle values are Python floats, the surrogate a tensor), so
        its value and gradient are identical to Pyro's. With one particle the
        ``0.0 + s / 1`` of Pyro's accumulation is skipped: it is exact.
        """
        n = self.num_particles
        loss = 0.0
        surrogate_loss = None
        recon = None
        kl = None
        for model_tr, guide_tr in self.elbo._get_traces(model, guide, (x,), {}):
            value, surrogate = self.elbo._differentiable_loss_particle(model_tr, guide_tr)
            if n == 1:
                loss, surrogate_loss = value, surrogate
            else:
                surrogate_loss = (0.0 if surrogate_loss is None else surrogate_loss) + (
                    surrogate / n
                )
                loss = loss + value / n
            with torch.no_grad():
                for name, site in model_tr.nodes.items():
                    if site["type"] != "sample":
                        continue
                    if site["is_observed"]:
                        term = site["unscaled_log_prob"]
                        recon = term if recon is None else recon + term
                    else:
                        term = _site_kl(site, guide_tr.nodes[name], self.analytic_kl)
                        kl = term if kl is None else kl + term
        if validate:
            warn_if_nan(surrogate_loss, "loss")
        elif math.isnan(float(loss)):
            warnings.warn("Encountered NaN: loss", stacklevel=3)
        loss = loss + (surrogate_loss - torch_item(surrogate_loss))
        recon = _zeros(x) if recon is None else (recon / n if n > 1 else recon).detach()
        kl = _zeros(x) if kl is None else (kl / n if n > 1 else kl).detach()
        return LossTerms(loss, recon, kl)

    def to_dict(self) -> dict:
        return {"objective": self.registry_name, "num_particles": self.num_particles}

    registry_name = "custom"


def _zeros(x: torch.Tensor) -> torch.Tensor:
    """A ``(B,)`` zero term (no site of that kind)."""
    return torch.zeros(x.shape[0], device=x.device)


def _call_key(model, guide, x: torch.Tensor) -> tuple:
    """What decides the structure of a call: the programs and the input's shape."""

    def ident(fn):
        owner = getattr(fn, "__self__", None)
        return (id(owner), getattr(fn, "__func__", fn))

    return (ident(model), ident(guide), tuple(x.shape), x.dtype, x.device)


@OBJECTIVES.register("trace")
class TraceELBO(Objective):
    """Pyro's ``Trace_ELBO``: Monte Carlo ELBO, reparameterized gradients."""

    elbo_class = Trace_ELBO


@OBJECTIVES.register("meanfield")
class MeanFieldELBO(Objective):
    """Pyro's ``TraceMeanField_ELBO``: analytic KL where registered."""

    elbo_class = TraceMeanField_ELBO
    analytic_kl = True
    needs_mean_field = True
