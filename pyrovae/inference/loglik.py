r"""Per-data-point marginal log-likelihood by importance sampling, and the ELBO's parts.

log p(x) is estimated with the guide as proposal (Burda et al. 2016, App. C;
the standard VAE evaluation protocol):

    log p(x_n) ~= log (1/K) sum_k p(x_n, z_k) / q(z_k | x_n),  z_k ~ q(z | x_n),

a per-data-point estimator (unlike ``pyro.infer.Importance``, which weights the
joint of the whole data set). It is a stochastic lower bound whose bias vanishes
as K grows; K = 5000 is the convention for reported figures. The K draws are
vectorized with a ``pyro.plate`` of size k (a chunk) around the model and guide
and the chunks are combined with a running log-sum-exp, so memory is bounded by
the chunk, not by K. Bits per dimension are -log p(x) / (D ln 2).

:func:`elbo_decomposition` reports, over a data set: the ELBO, its
reconstruction and KL terms, the KL per latent dimension (for factorized guides
and priors), the active units A_u = Var_x(E_q[z_u | x]) > 0.01 (Burda et al.
2016), the mutual information I(x; z) under the aggregate posterior
q(z) = (1/N) sum_n q(z | x_n) (Hoffman & Johnson 2016, estimated as in He et al.
2019), and, with ``samples``, log p(x) and the gap log p(x) - ELBO. Means, draws and
densities of q come from the family's joint guide posterior (``posterior_moments``,
``posterior_sample``, ``posterior_log_prob``): for a hierarchical VAE, z in I(x; z) is
both layers (z1, z2), the latents whose KL the ELBO charges, and the active units are
counted on the marginal means of z1. With the bottom-up guide, z2 depends on x only
through z1, so there I(x; z1, z2) = I(x; z1).
"""

from __future__ import annotations

import math

import pyro
import torch

from .. import sites
from ..config import WEIGHT_DRAWS
from ..data import TensorBatches
from ..data.batch import Batch
from ..errors import ConfigError
from ..models.base import require_latent_variables
from ..objectives.iwae import log_weights, vectorized_traces
from .fastpath import LogWeightChunks, cache_chunk
from .progress import progress_bar

#: Memory budget (bytes) for one chunk of importance samples: decoder outputs
#: and log-weights of ``chunk x batch`` samples, with room for intermediates.
DEFAULT_MEMORY = 512 * 2**20


def chunk_size(module, batch: int, samples: int, memory: int) -> int:
    per_sample = (
        4
        * 6
        * (math.prod(module.data_shape) * module.likelihood.param_channels + 4 * module.latent_dim)
    )
    return int(max(1, min(samples, memory // max(1, per_sample * batch))))


def _log_weights_chunk(module, x: torch.Tensor, k: int) -> torch.Tensor:
    log_w, _, _ = log_weights(*vectorized_traces(module.model, module.guide, x, k))
    return log_w.reshape(k, len(x))


def _data(x) -> torch.Tensor:
    """The data rows of ``x``: a tensor, or the ``x`` of a batch with conditions."""
    return x.x if isinstance(x, Batch) else x


@torch.no_grad()
def log_likelihood(
    module,
    x: torch.Tensor,
    samples: int = 5000,
    batch_size: int = 100,
    memory: int = DEFAULT_MEMORY,
    progress: bool = False,
    direct: bool = True,
    mask: torch.Tensor | None = None,
    weight_draws: int = WEIGHT_DRAWS,
) -> torch.Tensor:
    """Importance-sampled log p(x_n) for every row of ``x``, shape ``(N,)``, in nats
    (with ``mask``, log p(x_obs,n) of the observed entries); for a Bayesian decoder, the
    predictive log E_q(θ)[p(x_n|θ)] with ``weight_draws`` draws of θ (module docstring).

    Parameters
    ----------
    module : LatentModule
        A model family with latent sites (``module.model``, ``module.guide``).
    x : Tensor or Batch
        Data ``(N, *data_shape)`` (a :class:`~pyrovae.data.Batch` carrying the rows'
        conditions, for a conditional family).
    samples : int
        K importance samples per data point.
    batch_size : int
        Data points per pass.
    memory : int
        Bytes one chunk of samples may use; chunks are also kept near the processor's
        cache (:func:`pyrovae.inference.fastpath.cache_chunk`).
    direct : bool
        Compute the log-weights from the family's distributions where it has a direct
        form (:mod:`pyrovae.inference.fastpath`); ``False``, or a family without one,
        reads them off Pyro traces. Both draw the same z from the same seed and give the
        same values up to float rounding.
    progress : bool
        Show a progress bar over the data points (:mod:`.progress`).
    mask : Tensor, optional
        ``bool`` of ``x``'s shape, ``True`` where observed: the marginal likelihood of
        the observed entries, log p(x_obs) = log E_q[p(x_obs, z) / q(z | x_obs)].
    weight_draws : int
        S draws of a Bayesian decoder's weights (ignored for a point decoder).
    """
    require_latent_variables(module, "log p(x)")
    if int(samples) < 1:
        raise ConfigError(f"samples must be >= 1; got {samples}")
    weights = getattr(module, "decoder_weights", None)
    if weights is not None and not weights.is_fixed:
        if int(weight_draws) < 1:
            raise ConfigError(f"weight_draws must be >= 1; got {weight_draws}")
        per_draw = []
        for theta in weights.draws(int(weight_draws)):
            with weights.fixed(theta):
                per_draw.append(
                    log_likelihood(module, x, samples, batch_size, memory, progress, direct, mask)
                )
        return torch.logsumexp(torch.stack(per_draw), 0) - math.log(len(per_draw))
    was_training = module.training
    module.eval()
    out = []
    bar = progress_bar(enabled=progress, total=len(x), desc="log p(x)", unit="point", leave=False)
    try:
        chunks = LogWeightChunks(module, direct)
        with bar, pyro.validation_enabled(False):
            for i in range(0, len(x), batch_size):
                xb = x[i : i + batch_size]
                sampler = chunks.sampler(xb, None if mask is None else mask[i : i + batch_size])
                chunk = min(
                    chunk_size(module, len(xb), samples, memory),
                    cache_chunk(module, len(xb)),
                )
                total = torch.full((len(xb),), -math.inf, device=_data(x).device)
                done = 0
                while done < samples:
                    k = min(chunk, samples - done)
                    lw = sampler(k)
                    total = torch.logaddexp(total, torch.logsumexp(lw, 0))
                    done += k
                out.append(total - math.log(samples))
                bar.update(len(xb))
    finally:
        module.train(was_training)
    return torch.cat(out)


@torch.no_grad()
def elbo_terms(
    module, x: torch.Tensor, particles: int = 1, batch_size: int = 512
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-data-point reconstruction term and KL (Monte Carlo, beta = 1), each ``(N,)``,
    whatever objective the model was trained with: by the family's ``elbo_objective``
    (the trace ELBO; with a family's discrete sites summed out where it has them)."""
    from ..objectives import OBJECTIVES

    objective = OBJECTIVES.get(getattr(module, "elbo_objective", "trace"))(
        num_particles=int(particles)
    )
    was_training = module.training
    module.eval()
    recon, kl = [], []
    try:
        with pyro.validation_enabled(False):
            for batch in TensorBatches(x, batch_size):
                terms = objective(module.model, module.guide, batch)
                recon.append(terms.recon)
                kl.append(terms.kl)
    finally:
        module.train(was_training)
    return torch.cat(recon), torch.cat(kl)


def _mean_se(v: torch.Tensor) -> tuple[float, float]:
    n = v.numel()
    return float(v.mean()), (float(v.std() / math.sqrt(n)) if n > 1 else math.nan)


@torch.no_grad()
def elbo_decomposition(
    module,
    x: torch.Tensor,
    samples: int = 0,
    particles: int = 10,
    batch_size: int = 500,
    progress: bool = False,
    weight_draws: int = WEIGHT_DRAWS,
) -> dict:
    """The ELBO's parts over the rows of ``x`` (see the module docstring); ``progress``
    shows a bar over the importance sampling of log p(x).

    Returns
    -------
    dict
        ``elbo``, ``recon``, ``kl`` (means per data point with ``*_se``),
        ``kl_per_dim`` (list, or None if the guide/prior do not factorize),
        ``active_units``, ``mutual_info``, and with ``samples > 0``:
        ``log_likelihood`` (+ ``_se``), ``bits_per_dim`` and ``gap`` (log p(x) - ELBO).
    """
    from ..objectives.freebits import per_dimension_kl

    recon, kl = elbo_terms(module, x, particles, batch_size)
    was_training = module.training
    module.eval()
    means, kl_dims = [], []
    factorized = True
    try:
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size]
            means.append(module.posterior_moments(xb)[sites.LATENT].mean)
            if factorized:
                try:
                    # per-dimension KLs exist for a single-site guide, encode(x) itself,
                    # with a prior_distribution (the VAE); others raise and report None
                    prior = module.prior_distribution().expand([len(xb)])
                    q = module.encode(xb)
                    kl_dims.append(per_dimension_kl(q, prior, q.sample()))
                except (ConfigError, AttributeError):
                    factorized = False
    finally:
        module.train(was_training)
    means = torch.cat(means)
    elbo = recon - kl
    out: dict = {"n": len(x), "particles": int(particles)}
    weights = getattr(module, "decoder_weights", None)
    if weights is not None:
        # the KL terms include the weights' share KL(q(θ) || p(θ)) / N, N = rows of x
        out["weight_kl"] = float(weights.kl())
        out["weight_draws"] = int(weight_draws)
    for name, v in (("elbo", elbo), ("recon", recon), ("kl", kl)):
        out[name], out[f"{name}_se"] = _mean_se(v)
    out["kl_per_dim"] = torch.cat(kl_dims).mean(0).tolist() if factorized and kl_dims else None
    activity = means.var(0) if means.shape[0] > 1 else torch.zeros(means.shape[1])
    out["active_units"] = int((activity > 0.01).sum())
    out["activity"] = activity.tolist()
    out["mutual_info"] = mutual_information(module, x[:1000])
    if samples:
        ll = log_likelihood(
            module, x, samples=samples, progress=progress, weight_draws=weight_draws
        )
        out["log_likelihood"], out["log_likelihood_se"] = _mean_se(ll)
        out["samples"] = int(samples)
        out["bits_per_dim"] = -out["log_likelihood"] / (math.prod(module.data_shape) * math.log(2))
        out["gap"] = float((ll - elbo).mean())
    return out


#: Pairs (draw, data point) scored at once by :func:`mutual_information`.
MI_PAIRS = 2**16


@torch.no_grad()
def mutual_information(module, x: torch.Tensor) -> float:
    """I(x; z) = E_x E_q(z|x)[log q(z|x) - log q(z)], q(z) the aggregate posterior of ``x``.

    One joint draw z_n ~ q(z|x_n) per data point (every latent site of the guide);
    log q(z_n) = logmeanexp_m log q(z_n|x_m) over all rows m (He et al. 2019), with the
    guide's joint density ``module.posterior_log_prob``. Biased low for small N; it
    cannot exceed log N.
    """
    draws = {k: v[0] for k, v in module.posterior_sample(x, 1).items()}  # site -> (N, dim)
    log_q_own = module.posterior_log_prob(x, draws)  # (N,)
    n = len(x)
    step = max(1, MI_PAIRS // n)
    log_agg = []
    for i in range(0, n, step):
        # (b, 1, dim): each draw against every q(.|x_m)
        zi = {k: v[i : i + step].unsqueeze(1) for k, v in draws.items()}
        log_agg.append(torch.logsumexp(module.posterior_log_prob(x, zi), dim=1) - math.log(n))
    return float((log_q_own - torch.cat(log_agg)).mean())
