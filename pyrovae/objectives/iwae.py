r"""Importance-weighted bounds: IWAE (Burda et al. 2016) and its DReG gradient.

For each data point x_n, with K draws z_{n,k} ~ q(z|x_n),

    log w_{n,k} = log p(x_n | z_{n,k}) + beta (log p(z_{n,k}) - log q(z_{n,k} | x_n)),
    L_K(x_n) = log (1/K) sum_k w_{n,k}  <=  log p(x_n)   (beta = 1),

with L_1 the ELBO and L_K non-decreasing in K. The minibatch loss is
-sum_{n in batch} L_K(x_n): the log-sum-exp runs over the K draws of *one*
data point, and any N/B rescaling multiplies the sum from outside. (Pyro's
``RenyiELBO`` with a subsampled plate puts the N/B scale inside the
log-sum-exp, which biases it; pyrovae does not subsample plates.)

The K draws are vectorized with a ``pyro.plate("particles", K, dim=-2)``
around the model and guide; the log-weights are read off Pyro traces.

DReG (Tucker et al. 2019): the IWAE gradient for the guide's parameters
phi has a score-function part whose variance grows with K. The doubly
reparameterized estimator replaces it by

    grad_phi = sum_k  w~_k^2  d log w_k / d z_k  d z_k / d phi,

w~ the normalised weights, where log w_k is evaluated with q's parameters held
fixed (gradients flow only through z). Parameters of the model get the usual
IWAE gradient sum_k w~_k grad_theta log p(x, z_k). pyrovae builds both from
two extra passes of the same Pyro programs, with the module's parameters
detached (``torch.func.functional_call``) or with z detached.
"""

from __future__ import annotations

import math

import pyro
import torch
from pyro import poutine
from torch import nn

from .. import sites
from ..errors import ConfigError
from . import OBJECTIVES
from .elbo import LossTerms

PARTICLES_PLATE = "particles"


def _vectorized(fn, k: int):
    def wrapped(x):
        with pyro.plate(PARTICLES_PLATE, k, dim=-2):
            return fn(x)

    return wrapped


def vectorized_traces(model, guide, x: torch.Tensor, k: int):
    """(model trace, guide trace) with K = ``k`` draws per data point in a particles plate."""
    guide_tr = poutine.trace(_vectorized(guide, k)).get_trace(x)
    model_tr = poutine.trace(poutine.replay(_vectorized(model, k), trace=guide_tr)).get_trace(x)
    return model_tr, guide_tr


def _sample_sites(tr):
    return [(n, s) for n, s in tr.nodes.items() if s["type"] == "sample"]


def _log_weights(model_tr, guide_tr) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(log w, reconstruction, KL), each (K, B); log w carries each site's scale (beta)."""
    model_tr.compute_log_prob()
    guide_tr.compute_log_prob()
    log_w = recon = kl = 0.0
    for _name, site in _sample_sites(model_tr):
        log_w = log_w + site["log_prob"]
        if site["is_observed"]:
            recon = recon + site["unscaled_log_prob"]
        else:
            kl = kl - site["unscaled_log_prob"]
    for _name, site in _sample_sites(guide_tr):
        log_w = log_w - site["log_prob"]
        kl = kl + site["unscaled_log_prob"]
    return log_w, recon, kl


class _Call(nn.Module):
    """Calls one of a module's Pyro programs, so functional_call can swap its parameters."""

    def __init__(self, module: nn.Module, program: str) -> None:
        super().__init__()
        self.module = module
        self.program = program

    def forward(self, x):
        return getattr(self.module, self.program)(x)


def _owner(fn) -> nn.Module:
    owner = getattr(fn, "__self__", None)
    if not isinstance(owner, nn.Module):
        raise ConfigError("the dreg objective needs model and guide methods of one nn.Module")
    return owner


@OBJECTIVES.register("iwae")
class IWAE:
    """Importance-weighted ELBO with K = ``num_particles`` samples (default 5).

    Parameters
    ----------
    num_particles : int
        Number K of importance samples per data point.
    """

    analytic_kl = False
    dreg = False

    def __init__(self, num_particles: int = 5) -> None:
        if int(num_particles) < 1:
            raise ConfigError(f"iwae needs particles >= 1; got {num_particles}")
        self.num_particles = int(num_particles)

    def __call__(self, model, guide, x: torch.Tensor) -> LossTerms:
        model_tr, guide_tr = vectorized_traces(model, guide, x, self.num_particles)
        log_w, recon, kl = _log_weights(model_tr, guide_tr)
        log_w = log_w.reshape(self.num_particles, x.shape[0])
        bound = torch.logsumexp(log_w, 0) - math.log(self.num_particles)  # (B,)
        loss = -bound.sum()
        if self.dreg:
            loss = self._dreg_surrogate(model, guide, x, guide_tr, log_w, loss)
        zeros = torch.zeros(x.shape[0], device=x.device)
        recon = recon.mean(0).detach() if torch.is_tensor(recon) else zeros
        kl = kl.mean(0).detach() if torch.is_tensor(kl) else zeros
        return LossTerms(loss, recon, kl)

    def _dreg_surrogate(self, model, guide, x, guide_tr, log_w, loss):
        k = self.num_particles
        module = _owner(model)
        frozen = {f"module.{n}": p.detach() for n, p in module.named_parameters()}
        buffers = {f"module.{n}": b for n, b in module.named_buffers()}
        frozen.update(buffers)

        def run_frozen(program):
            call = _Call(module, program)
            return lambda xx: torch.func.functional_call(call, frozen, (xx,))

        # 1. guide gradient: log w with every parameter frozen, z live
        g_fixed = poutine.trace(
            poutine.replay(_vectorized(run_frozen("guide"), k), trace=guide_tr)
        ).get_trace(x)
        m_fixed = poutine.trace(
            poutine.replay(_vectorized(run_frozen("model"), k), trace=guide_tr)
        ).get_trace(x)
        log_w_path, _, _ = _log_weights(m_fixed, g_fixed)
        w = torch.softmax(log_w.detach(), 0)
        surrogate_guide = -(w.pow(2) * log_w_path.reshape(k, -1)).sum()
        # 2. model gradient: log p(x, z) with live parameters, z held fixed
        held = guide_tr.copy()
        for _, site in _sample_sites(held):
            site["value"] = site["value"].detach()
        m_live = poutine.trace(poutine.replay(_vectorized(model, k), trace=held)).get_trace(x)
        m_live.compute_log_prob()
        log_p = sum(site["log_prob"] for _, site in _sample_sites(m_live))
        surrogate_model = -(w * log_p.reshape(k, -1)).sum()
        surrogate = surrogate_guide + surrogate_model
        return loss.detach() + (surrogate - surrogate.detach())

    def to_dict(self) -> dict:
        return {"objective": self.registry_name, "num_particles": self.num_particles}


@OBJECTIVES.register("iwae-dreg")
class IWAEDReG(IWAE):
    """IWAE with the doubly reparameterized gradient for the guide (Tucker et al. 2019)."""

    dreg = True


__all__ = ["IWAE", "IWAEDReG", "PARTICLES_PLATE", "sites"]
