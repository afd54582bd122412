r"""ELBO objectives built on Pyro's estimators.

For a minibatch x_1..x_B the objectives return

    loss = -sum_n ( E_q[log p(x_n|z)] - beta * KL(q(z|x_n) || p(z)) )

as a differentiable (surrogate) tensor computed by Pyro's
``Trace_ELBO`` (Monte Carlo KL; Wingate & Weber 2013, Ranganath et al. 2014)
or ``TraceMeanField_ELBO`` (analytic KL where ``torch.distributions`` has one
registered, Monte Carlo otherwise). beta enters through ``poutine.scale`` on the
latent site in model and guide (see :mod:`pyrovae.models.vae`); the objective passes
it to both programs as a keyword.

Alongside the loss, the objectives report the per-datapoint reconstruction term
log p(x_n|z) and the *unscaled* KL term (analytic where the objective uses it, else the
single-sample estimate log q - log p), read from the same model and guide traces, so
the decomposition costs no extra forward pass.

Direct route. :class:`TraceELBO` (one particle) asks the model's family for its direct
form (``direct_elbo_terms``: the family's distributions composed as its programs compose
them, from the same random draws, without Pyro's handlers and traces). The first call
for each call structure (programs, shapes) runs the traces and, from the same random
state, the direct form; when their loss and terms agree to :data:`DIRECT_RTOL` every
call of that structure (the first included) returns the direct route's loss, otherwise
(or when the family, the batch or the guide has no direct form) the traces', and the
reason is logged. The first call is the validated one (see :class:`PyroELBO`), so the
structure of the programs is still checked by Pyro. The two routes draw the same z and
differ by the order of float32 sums (about 1e-7 of the loss; gradients alike).

One pass yields both the loss and its terms through :class:`TraceTerms`, a subclass of
Pyro's ``Trace_ELBO`` whose :meth:`~TraceTerms.particles` yields each particle's
traces with its loss and surrogate loss (the two halves of
``Trace_ELBO.differentiable_loss``), and :class:`MeanFieldTerms`, the same for
``TraceMeanField_ELBO``; ``tests/objectives`` checks the loss equals
``differentiable_loss`` exactly, in value and gradient.

References
----------
Wingate, D. & Weber, T. (2013). Automated variational inference in probabilistic
programming. arXiv:1301.1299.
Ranganath, R., Gerrish, S. & Blei, D. M. (2014). Black box variational inference.
AISTATS.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterator

import pyro
import torch
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from pyro.infer.util import is_validation_enabled, torch_item
from pyro.poutine import Trace
from pyro.util import warn_if_nan

from ..data.batch import Batch, as_batch
from . import OBJECTIVES
from .base import LossTerms, Objective, per_point, site_kl, zero_terms

logger = logging.getLogger(__name__)

#: Relative tolerance (on the loss, and on the per-datum terms relative to the largest)
#: within which the direct form must reproduce the traces to be used.
DIRECT_RTOL = 1e-4


class TraceTerms(Trace_ELBO):
    """Pyro's ``Trace_ELBO`` that also hands out each particle's traces."""

    def traces(self, model, guide, *args, **kwargs) -> Iterator[tuple[Trace, Trace]]:
        """(model trace, guide trace) of each particle, log-densities computed, as
        ``differentiable_loss(model, guide, *args, **kwargs)`` draws them."""
        yield from self._get_traces(model, guide, args, kwargs)

    def particles(self, model, guide, *args, **kwargs) -> Iterator[tuple]:
        """``(loss, surrogate_loss, model_trace, guide_trace)`` of each particle: the
        terms that ``differentiable_loss`` averages (the loss a float, the surrogate a
        tensor)."""
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            loss, surrogate = self._differentiable_loss_particle(model_trace, guide_trace)
            yield loss, surrogate, model_trace, guide_trace


class MeanFieldTerms(TraceTerms, TraceMeanField_ELBO):
    """Pyro's ``TraceMeanField_ELBO`` (analytic KL) with :class:`TraceTerms`' methods."""


class PyroELBO(Objective):
    """An objective computed by one of Pyro's trace ELBOs (:attr:`elbo_class`), also
    returning the ELBO's terms.

    Parameters
    ----------
    num_particles : int
        Monte Carlo samples per datapoint (averaged).
    always_validate : bool
        Run every call with Pyro's validation checks (if Pyro's validation is
        enabled globally). By default only the first call for each model, guide
        and input shape is validated; see Notes.
    direct : bool
        Let calls after the first of each structure take the direct route where the
        objective and the family have one (see the module docstring); False always
        runs Pyro's traces.

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

    elbo_class: type[TraceTerms] = TraceTerms

    def __init__(
        self, num_particles: int = 1, always_validate: bool = False, direct: bool = True
    ) -> None:
        self.num_particles = int(num_particles)
        self.always_validate = bool(always_validate)
        self.direct = bool(direct)
        self.elbo = self.elbo_class(num_particles=self.num_particles, max_plate_nesting=1)
        #: call structure -> whether its later calls take the direct route
        self._direct: dict = {}

    def direct_terms(self, model, guide, batch: Batch, beta: float) -> tuple:
        """``(recon, kl)`` per datum, differentiable, computed without traces such that
        ``-(recon - beta * kl).sum()`` is this objective's loss on the same random draws;
        raise ``NotImplementedError`` with the reason where there is no such form (the
        default: the traces are always run)."""
        raise NotImplementedError(f"the {self.registry_name!r} objective runs the traces")

    def loss_terms(self, model, guide, batch: Batch, beta: float) -> LossTerms:
        key = _call_key(model, guide, batch)
        direct = self._direct.get(key)
        if direct is None:  # the first call of this structure
            return self._first_call(key, model, guide, batch, beta)
        if direct:  # validated on the first call, as the traces are
            with pyro.validation_enabled(False):
                return self._direct_call(model, guide, batch, beta)
        if not is_validation_enabled():
            return self._evaluate(model, guide, batch, beta, validate=False)
        if self.always_validate:
            return self._evaluate(model, guide, batch, beta, validate=True)
        with pyro.validation_enabled(False):
            return self._evaluate(model, guide, batch, beta, validate=False)

    def route(self, model, guide, batch: Batch | torch.Tensor) -> str | None:
        """The route later calls of this structure take: ``"direct"`` or ``"traces"``,
        or None before its first call."""
        direct = self._direct.get(_call_key(model, guide, as_batch(batch)))
        return None if direct is None else ("direct" if direct else "traces")

    def _first_call(self, key, model, guide, batch: Batch, beta: float) -> LossTerms:
        """Run the traces (validated where Pyro's validation is on) and decide the route
        of the later calls by comparing the direct form, from the same random state."""
        direct = reason = None
        if self.always_validate or not self.direct:
            reason = "always_validate is set" if self.always_validate else "direct=False"
        else:
            devices = [batch.x.device] if batch.x.device.type == "cuda" else []
            try:
                with torch.random.fork_rng(devices=devices):
                    direct = self.direct_terms(model, guide, batch, beta)
            except NotImplementedError as exc:
                reason = str(exc)
        terms = self._evaluate(model, guide, batch, beta, validate=is_validation_enabled())
        if direct is not None:
            reason = _disagreement(terms, direct, beta)
        self._direct[key] = reason is None
        if reason is not None:
            logger.info("%s runs Pyro's traces: %s", type(self).__name__, reason)
            return terms
        # every call of this structure returns the direct route's numbers, the first
        # included, so that a run resumed between two calls repeats them exactly
        logger.debug("%s takes the direct route", type(self).__name__)
        return self._terms(*direct, beta)

    def _direct_call(self, model, guide, batch: Batch, beta: float) -> LossTerms:
        return self._terms(*self.direct_terms(model, guide, batch, beta), beta)

    @staticmethod
    def _terms(recon: torch.Tensor, kl: torch.Tensor, beta: float) -> LossTerms:
        loss = -(recon - beta * kl).sum() if beta != 1 else -(recon - kl).sum()
        if math.isnan(float(loss.detach())):
            warnings.warn("Encountered NaN: loss", stacklevel=4)
        return LossTerms(loss, recon.detach(), kl.detach())

    def _evaluate(self, model, guide, batch: Batch, beta: float, validate: bool) -> LossTerms:
        """One pass of ``differentiable_loss``, also collecting the ELBO's terms.

        The loss is assembled exactly as ``Trace_ELBO.differentiable_loss``
        does (the particle values are Python floats, the surrogate a tensor), so
        its value and gradient are identical to Pyro's. With one particle the
        ``0.0 + s / 1`` of Pyro's accumulation is skipped: it is exact.
        """
        n = self.num_particles
        loss = 0.0
        surrogate_loss = recon = kl = None
        for value, surrogate, model_tr, guide_tr in self.elbo.particles(
            model, guide, batch, beta=beta
        ):
            if n == 1:
                loss, surrogate_loss = value, surrogate
            else:
                surrogate_loss = (0.0 if surrogate_loss is None else surrogate_loss) + (
                    surrogate / n
                )
                loss = loss + value / n
            with torch.no_grad():
                recon, kl = self._add_terms(model_tr, guide_tr, recon, kl, batch)
        if validate:
            warn_if_nan(surrogate_loss, "loss")
        elif math.isnan(float(loss)):
            warnings.warn("Encountered NaN: loss", stacklevel=4)
        loss = loss + (surrogate_loss - torch_item(surrogate_loss))
        recon = zero_terms(batch) if recon is None else (recon / n if n > 1 else recon).detach()
        kl = zero_terms(batch) if kl is None else (kl / n if n > 1 else kl).detach()
        return LossTerms(loss, recon, kl)

    def _add_terms(self, model_tr, guide_tr, recon, kl, batch: Batch) -> tuple:
        """The running sums (reconstruction, KL), each ``(B,)`` or None while no site of
        its kind was seen, with one particle's sites added in trace order (a global
        site's KL as its share per data point, :func:`~.base.per_point`)."""
        for name, site in model_tr.nodes.items():
            if site["type"] != "sample":
                continue
            if site["is_observed"]:
                term = site["unscaled_log_prob"]
                recon = term if recon is None else recon + term
            else:
                term = site_kl(site, guide_tr.nodes[name], self.analytic_kl)
                term = per_point(term, site, batch)
                kl = term if kl is None else kl + term
        return recon, kl


def _disagreement(terms: LossTerms, direct: tuple, beta: float) -> str | None:
    """Why the direct terms ``(recon, kl)`` do not reproduce the traced ``terms``, or None
    when loss, reconstruction and KL agree to :data:`DIRECT_RTOL`."""
    recon, kl = (t.detach() for t in direct)
    loss = float(-(recon - beta * kl).sum())
    traced = float(terms.loss.detach())
    if not math.isfinite(loss) or abs(loss - traced) > DIRECT_RTOL * max(1.0, abs(traced)):
        return f"its family's direct form gives the loss {loss:.6g}, the traces {traced:.6g}"
    for name, a, b in (("reconstruction", recon, terms.recon), ("KL", kl, terms.kl)):
        scale = max(1.0, float(b.abs().max())) if b.numel() else 1.0
        if a.shape != b.shape or float((a - b).abs().max()) > DIRECT_RTOL * scale:
            return f"its family's direct form gives other {name} terms than the traces"
    return None


def _call_key(model, guide, batch: Batch) -> tuple:
    """What decides the structure of a call: the programs and the batch's shapes."""

    def ident(fn):
        owner = getattr(fn, "__self__", None)
        return (id(owner), getattr(fn, "__func__", fn))

    x = batch.x
    y = None if batch.y is None else tuple(batch.y.shape)
    return (ident(model), ident(guide), tuple(x.shape), x.dtype, x.device, y, batch.mask is None)


@OBJECTIVES.register("trace")
class TraceELBO(PyroELBO):
    """Pyro's ``Trace_ELBO``: Monte Carlo ELBO, reparameterized gradients (with discrete
    sites summed out, ``TraceEnum_ELBO``: :class:`~pyrovae.objectives.enum.EnumELBO`)."""

    elbo_class = TraceTerms
    enumerated = "enum"

    def direct_terms(self, model, guide, batch: Batch, beta: float) -> tuple:
        """The family's ``direct_elbo_terms`` where ``model`` and ``guide`` are a model
        family's own programs and one particle is drawn."""
        if type(self)._evaluate is not PyroELBO._evaluate:
            raise NotImplementedError(f"{type(self).__name__} computes a loss of its own")
        if self.num_particles != 1:
            raise NotImplementedError("more than one particle")
        owner = getattr(model, "__self__", None)
        direct = getattr(owner, "direct_elbo_terms", None)
        if direct is None or model != owner.model or guide != getattr(owner, "guide", None):
            raise NotImplementedError("the programs are not one model family's own")
        return direct(batch, beta)


@OBJECTIVES.register("meanfield")
class MeanFieldELBO(PyroELBO):
    """Pyro's ``TraceMeanField_ELBO``: analytic KL where registered."""

    elbo_class = MeanFieldTerms
    analytic_kl = True
    needs_mean_field = True
