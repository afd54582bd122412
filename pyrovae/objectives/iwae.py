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

DReG for the beta-IWAE bound (Tucker et al. 2019 derive it at beta = 1).
Write z_k = z(eps_k, phi) for the reparameterized draws, w~_k = w_k / sum_j w_j
for the normalised weights, and d log w_k / d z_k for the derivative of log w_k
through z alone (every parameter held fixed). The IWAE gradient with respect to
the guide's parameters phi is

    grad_phi L_K = sum_k w~_k [d log w_k/d z_k d z_k/d phi - beta grad_phi log q_phi(z_k|x)],

a pathwise part and a score-function part; the score part (the partial
derivative of log w_k in phi at fixed z, which is -beta times the score of q)
has a variance that grows with K. For any f(z_1..K) that does not depend on phi
explicitly, the reparameterization identity

    E_q[ f(z_1..K) grad_phi log q_phi(z_k|x) ] = E_eps[ d f/d z_k  d z_k/d phi ]

holds (Tucker et al. 2019, Sec. 3): both sides are the derivative of E[f] in the
parameters of the k-th draw's distribution only, by the score function and by
reparameterization.
Take f = w~_k with q's parameters frozen inside it: since
d w~_k / d z_k = w~_k (1 - w~_k) d log w_k / d z_k (log w_j, j != k, does not
depend on z_k),

    E[ -beta sum_k w~_k grad_phi log q(z_k|x) ]
        = E[ -beta sum_k w~_k (1 - w~_k) d log w_k/d z_k  d z_k/d phi ],

and adding the pathwise part gives the estimator used here,

    grad_phi = sum_k ((1 - beta) w~_k + beta w~_k^2)  d log w_k/d z_k  d z_k/d phi,

which has the same expectation as the IWAE gradient and no score-function
term. At beta = 1 the coefficient is Tucker et al.'s w~_k^2; at K = 1 it is 1
(the path-derivative ELBO gradient of Roeder et al. 2017). The identity needs
one beta for every latent site of the guide, which is how pyrovae scales them
(``poutine.scale`` on model and guide); a guide whose latent sites carry
different scales is refused. Parameters that also enter p(x, z) (the
VampPrior's encoder, the decoder, the prior's) get in addition the usual IWAE
term sum_k w~_k grad_theta log p(x, z_k) at fixed z. pyrovae builds both from
two extra passes of the same Pyro programs, with the module's parameters
detached (``torch.func.functional_call``) or with z detached.

References
----------
Burda, Grosse & Salakhutdinov (2016), Importance weighted autoencoders, ICLR.
Tucker, Lawson, Gu & Maddison (2019), Doubly reparameterized gradient
estimators for Monte Carlo objectives, ICLR.
Roeder, Wu & Duvenaud (2017), Sticking the landing, NeurIPS.
"""

from __future__ import annotations

import math

import pyro
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample
from torch import nn

from .. import sites
from ..data.batch import Batch, as_batch
from ..errors import ConfigError
from . import OBJECTIVES
from .base import LossTerms, Objective, zero_terms

PARTICLES_PLATE = "particles"


def _vectorized(fn, k: int):
    def wrapped(batch, beta=1.0):
        with pyro.plate(PARTICLES_PLATE, k, dim=-2):
            return fn(batch, beta=beta)

    return wrapped


def vectorized_traces(model, guide, batch: Batch | torch.Tensor, k: int, beta: float = 1.0):
    """(model trace, guide trace) with K = ``k`` draws per data point in a particles
    plate, both programs run at ``beta``."""
    batch = as_batch(batch)
    guide_tr = poutine.trace(_vectorized(guide, k)).get_trace(batch, beta=beta)
    model_tr = poutine.trace(poutine.replay(_vectorized(model, k), trace=guide_tr)).get_trace(
        batch, beta=beta
    )
    return model_tr, guide_tr


def _sample_sites(tr):
    return [(n, s) for n, s in tr.nodes.items() if s["type"] == "sample"]


def log_weights(model_tr, guide_tr) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
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


def _latent_scale(guide_tr) -> float:
    """The one scale (beta) shared by the guide's latent sites; DReG needs it to be one."""
    scales = set()
    for name, site in _sample_sites(guide_tr):
        if site_is_subsample(site):  # the plates' own sites
            continue
        values = torch.as_tensor(site["scale"]).detach().flatten().unique().tolist()
        scales.update(values)
        if len(scales) > 1:
            raise ConfigError(
                f"the dreg objective needs one scale (beta) on every latent site; "
                f"site {name!r} makes them {sorted(scales)}"
            )
    return scales.pop() if scales else 1.0


class _Call(nn.Module):
    """Calls one of a module's Pyro programs, so functional_call can swap its parameters."""

    def __init__(self, module: nn.Module, program: str) -> None:
        super().__init__()
        self.module = module
        self.program = program

    def forward(self, batch, beta=1.0):
        return getattr(self.module, self.program)(batch, beta=beta)


def _owner(fn) -> nn.Module:
    owner = getattr(fn, "__self__", None)
    if not isinstance(owner, nn.Module):
        raise ConfigError("the dreg objective needs model and guide methods of one nn.Module")
    return owner


@OBJECTIVES.register("iwae")
class IWAE(Objective):
    """Importance-weighted ELBO with K = ``num_particles`` samples (default 5).

    Parameters
    ----------
    num_particles : int
        Number K of importance samples per data point.
    """

    analytic_kl = False
    dreg = False
    #: the particles plate would draw global sites (decoder weights) once per particle
    global_sites = False

    def __init__(self, num_particles: int = 5) -> None:
        if int(num_particles) < 1:
            raise ConfigError(f"iwae needs particles >= 1; got {num_particles}")
        self.num_particles = int(num_particles)

    def loss_terms(self, model, guide, batch: Batch, beta: float) -> LossTerms:
        model_tr, guide_tr = vectorized_traces(model, guide, batch, self.num_particles, beta)
        log_w, recon, kl = log_weights(model_tr, guide_tr)
        log_w = log_w.reshape(self.num_particles, len(batch))
        bound = torch.logsumexp(log_w, 0) - math.log(self.num_particles)  # (B,)
        loss = -bound.sum()
        if self.dreg:
            loss = self._dreg_surrogate(model, guide, batch, beta, guide_tr, log_w, loss)
        recon = recon.mean(0).detach() if torch.is_tensor(recon) else zero_terms(batch)
        kl = kl.mean(0).detach() if torch.is_tensor(kl) else zero_terms(batch)
        return LossTerms(loss, recon, kl)

    def _dreg_surrogate(self, model, guide, batch, beta, guide_tr, log_w, loss):
        k = self.num_particles
        module = _owner(model)
        frozen = {f"module.{n}": p.detach() for n, p in module.named_parameters()}
        buffers = {f"module.{n}": b for n, b in module.named_buffers()}
        frozen.update(buffers)

        def run_frozen(program):
            call = _Call(module, program)
            return lambda bb, beta=1.0: torch.func.functional_call(
                call, frozen, (bb,), {"beta": beta}
            )

        def trace(program, replayed):
            replay = poutine.replay(_vectorized(program, k), trace=replayed)
            return poutine.trace(replay).get_trace(batch, beta=beta)

        # 1. guide gradient: log w with every parameter frozen, z live
        g_fixed = trace(run_frozen("guide"), guide_tr)
        m_fixed = trace(run_frozen("model"), guide_tr)
        log_w_path, _, _ = log_weights(m_fixed, g_fixed)
        w = torch.softmax(log_w.detach(), 0)
        scale = _latent_scale(guide_tr)
        coef = (1.0 - scale) * w + scale * w.pow(2)
        surrogate_guide = -(coef * log_w_path.reshape(k, -1)).sum()
        # 2. model gradient: log p(x, z) with live parameters, z held fixed
        held = guide_tr.copy()
        for _, site in _sample_sites(held):
            site["value"] = site["value"].detach()
        m_live = trace(model, held)
        m_live.compute_log_prob()
        log_p = sum(site["log_prob"] for _, site in _sample_sites(m_live))
        surrogate_model = -(w * log_p.reshape(k, -1)).sum()
        surrogate = surrogate_guide + surrogate_model
        return loss.detach() + (surrogate - surrogate.detach())


@OBJECTIVES.register("iwae-dreg")
class IWAEDReG(IWAE):
    """IWAE with the doubly reparameterized gradient for the guide (Tucker et al. 2019)."""

    dreg = True


__all__ = ["IWAE", "IWAEDReG", "PARTICLES_PLATE", "sites"]
