r"""The inference gap split into its amortization and approximation parts (Cremer et al. 2018).

    log p(x) - ELBO[q_amortized] = (log p(x) - ELBO[q*]) + (ELBO[q*] - ELBO[q_amortized])
                                    approximation gap      amortization gap

Every term is computed with the guide itself, not with a Gaussian built from its moments:

* ELBO[q_amortized] = E_q[log p(x, z) - log q(z|x)] with z ~ q(z|x), the guide's own
  draws and density (diagonal, low-rank, full-covariance or IAF);
* q* is the best member of *the guide's own family* for each data point on its own.
  Every affine layer of the guide head gets a free shift of its output per data point,
  starting at 0 (the amortized guide) and optimised by Adam on that point's ELBO with
  the encoder, decoder and prior fixed. For the Gaussian heads (``normal``, ``lowrank``,
  ``full``) the head's one layer outputs the distribution's parameters, so the shifts
  reach every distribution of the family (any mean, and any diagonal, low-rank-plus-
  diagonal or full covariance); for the IAF they free the base Gaussian and the biases
  of every layer of the flows' autoregressive networks, while the networks' weights
  stay shared;
* log p(x) by importance sampling (Burda et al. 2016) with q* as the proposal, the
  closer of the two to the posterior: with a poor amortized guide the importance
  weights' heavy tail would bias the estimate low, below ELBO[q*].

The gradient is the "sticking the landing" estimator (Roeder et al. 2017): the score
term of log q, whose expectation is zero, is left out, so the gradient vanishes at the
exact posterior and the optimisation stays there. The learning rate decays to zero
along a cosine over the ``steps``.

The amortization gap is what the shared encoder loses against per-point optimisation;
the approximation gap is what the family loses against the exact posterior. Standard
errors are those of the Monte Carlo estimates for each data point: sd(log w) / sqrt(K)
for an ELBO from K draws, and by the delta method sd(w) / (sqrt(K) mean(w)) for the
importance-sampled log p(x); a gap's is the root sum of squares of its two terms'
(independent draws).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from pyro.distributions import Distribution
from torch import nn

from ..errors import ConfigError
from ..inference.loglik import DEFAULT_MEMORY, chunk_size


class PerPointShifts:
    """A free shift of every affine layer's output of ``head``, one per data point.

    While :meth:`active`, each ``nn.Linear`` in ``head`` (including masked ones, such
    as those of an autoregressive flow) adds ``shift[i]`` of shape ``(n, out_features)``
    to its output, whose data-point axis is the second to last.
    """

    def __init__(self, head: nn.Module, n: int, like: torch.Tensor) -> None:
        self.layers = [m for m in head.modules() if isinstance(m, nn.Linear)]
        if not self.layers:
            raise ConfigError("inference gaps need a guide head built from affine layers")
        self.shifts = [
            torch.zeros(n, m.out_features, dtype=like.dtype, device=like.device).requires_grad_()
            for m in self.layers
        ]
        self._detached = False

    @contextmanager
    def active(self) -> Iterator[None]:
        handles = [m.register_forward_hook(self._hook(i)) for i, m in enumerate(self.layers)]
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    @contextmanager
    def detached(self) -> Iterator[None]:
        """Shifts without gradient (for the density term of the STL estimator)."""
        self._detached = True
        try:
            yield
        finally:
            self._detached = False

    def _hook(self, i: int) -> Callable:
        def hook(module, inputs, output):
            shift = self.shifts[i]
            return output + (shift.detach() if self._detached else shift)

        return hook


def _log_joint(module, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """log p(x, z) = log p(z) + log p(x|z) for draws ``z`` of shape ``(k, n, L)``."""
    return module.prior_distribution().log_prob(z) + module.decode(z).log_prob(x)


def _log_weights(module, x, features, k: int, shifts: PerPointShifts | None, memory: int):
    """(k, n) log p(x, z) - log q(z|x), z ~ q, in chunks; q the head at ``features``
    (with ``shifts`` if given)."""
    chunk = chunk_size(module, x.shape[0], k, memory)
    out, done = [], 0
    while done < k:
        j = min(chunk, k - done)
        with shifts.active() if shifts is not None else _nothing():
            q = module.guide_head(features)
            z = q.sample((j,))
            log_q = q.log_prob(z)
        out.append(_log_joint(module, x, z) - log_q)
        done += j
    return torch.cat(out)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _stl_elbo(module, x, features, shifts: PerPointShifts, particles: int) -> torch.Tensor:
    """Per-point ELBO whose gradient with respect to the shifts is the STL estimator."""
    with shifts.active():
        q: Distribution = module.guide_head(features)
        z = q.rsample((particles,))
        with shifts.detached():
            log_q = module.guide_head(features).log_prob(z)
    return (_log_joint(module, x, z) - log_q).mean(0)


def _mean_se(log_w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    k = log_w.shape[0]
    return log_w.mean(0), log_w.std(0) / math.sqrt(k) if k > 1 else torch.zeros_like(log_w[0])


def _log_mean_exp_se(log_w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    k = log_w.shape[0]
    w = (log_w - log_w.max(0).values).exp()
    est = torch.logsumexp(log_w, 0) - math.log(k)
    se = w.std(0) / (math.sqrt(k) * w.mean(0)) if k > 1 else torch.zeros_like(est)
    return est, se


def inference_gaps(
    module,
    x: torch.Tensor,
    steps: int = 300,
    lr: float = 1e-2,
    particles: int = 16,
    eval_particles: int = 1000,
    samples: int = 2000,
    memory: int = DEFAULT_MEMORY,
) -> dict:
    """Per-data-point log p(x), ELBO of the guide, ELBO of per-point optimised q*, and gaps.

    Parameters
    ----------
    module : LatentModule
        A family with one latent site whose guide is ``guide_head(encoder(x))`` (the
        VAE): ``encoder``, ``guide_head``, ``prior_distribution`` and ``decode``.
    x : Tensor
        Data ``(n, *data_shape)``.
    steps, lr, particles : int, float, int
        Adam steps, initial learning rate and draws per step of the per-point optimisation.
    eval_particles : int
        Draws for each ELBO estimate.
    samples : int
        Importance samples for log p(x).
    memory : int
        Bytes one chunk of draws may use.

    Returns
    -------
    dict
        Per point ``(n,)``: ``log_likelihood``, ``elbo_amortized``, ``elbo_optimized``,
        ``amortization_gap``, ``approximation_gap`` and each one's ``*_se``; ``summary``
        holds their means (and the standard errors of the means).
    """
    needs = ("encoder", "guide_head", "prior_distribution", "decode")
    if not all(hasattr(module, a) for a in needs) or not getattr(module, "has_latent_sites", 0):
        raise ConfigError("inference gaps need a VAE with one latent layer")
    was_training = module.training
    module.eval()
    params = list(module.parameters())
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        with torch.no_grad():
            features = module.features(x)
            amort, amort_se = _mean_se(
                _log_weights(module, x, features, eval_particles, None, memory)
            )
        shifts = PerPointShifts(module.guide_head, x.shape[0], features)
        opt = torch.optim.Adam(shifts.shifts, lr=lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, int(steps)))
        for _ in range(int(steps)):
            opt.zero_grad()
            (-_stl_elbo(module, x, features, shifts, particles).sum()).backward()
            opt.step()
            sched.step()
        with torch.no_grad():
            opt_elbo, opt_se = _mean_se(
                _log_weights(module, x, features, eval_particles, shifts, memory)
            )
            ll, ll_se = _log_mean_exp_se(_log_weights(module, x, features, samples, shifts, memory))
    finally:
        for p, f in zip(params, flags, strict=True):
            p.requires_grad_(f)
        module.train(was_training)
    out = {
        "log_likelihood": ll,
        "elbo_amortized": amort,
        "elbo_optimized": opt_elbo,
        "amortization_gap": opt_elbo - amort,
        "approximation_gap": ll - opt_elbo,
        "log_likelihood_se": ll_se,
        "elbo_amortized_se": amort_se,
        "elbo_optimized_se": opt_se,
        "amortization_gap_se": (opt_se**2 + amort_se**2).sqrt(),
        "approximation_gap_se": (ll_se**2 + opt_se**2).sqrt(),
    }
    n = x.shape[0]
    summary = {}
    for key in ("log_likelihood", "elbo_amortized", "elbo_optimized"):
        summary[key] = float(out[key].mean())
        summary[f"{key}_se"] = float((out[f"{key}_se"] ** 2).sum().sqrt() / n)
    for key in ("amortization_gap", "approximation_gap"):
        summary[key] = float(out[key].mean())
        summary[f"{key}_se"] = float((out[f"{key}_se"] ** 2).sum().sqrt() / n)
    out["summary"] = summary
    return out
