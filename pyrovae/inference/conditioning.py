r"""Conditioning a trained model on partly observed data: the posterior over z given the
observed entries, and the posterior predictive of the missing ones.

For rows x observed where the mask m is ``True`` (x_obs) and missing elsewhere (x_miss),
a *conditioner* draws z from (an approximation of) p(z | x_obs); the missing entries are
then drawn from the model's own p(x_miss | z), so that

.. math::  p(x_{\mathrm{miss}} \mid x_{\mathrm{obs}})
           = \int p(x_{\mathrm{miss}} \mid z)\, p(z \mid x_{\mathrm{obs}})\, dz

(the likelihood factorizes over entries given z). Conditioners are registered in
:data:`CONDITIONERS`, each a callable

.. code-block:: python

    conditioner(module, rows, *, draws, seed, **options) -> (z, diagnostics)

taking the model family's module (networks fixed), the rows as a
:class:`~pyrovae.data.Batch` (``rows.x`` ``(B, *data_shape)`` with any finite value at
the missing entries, ``rows.mask`` the ``bool`` mask, and ``rows.y`` the rows'
conditions for a conditional family, else ``None``), the number of draws ``S`` and an
integer seed, and returning the latent draws ``{site: (S, B, dim)}`` (every
latent site of the family; ``module.code_of`` maps them to the code the decoder reads)
and a dict
of diagnostics. The global random state is left as it was. Registered here:

* ``"guide"``: z ~ q(z | x_obs, m), the amortized guide on the zero-filled x and the
  mask (``module.posterior_sample(module.guide_input(rows), S, mask=m)``). Fast, and
  only as good as the guide was trained to be on partial rows: a model trained with
  ``--missing mask`` and ``--mask-rate`` has seen them; one trained on complete rows has
  not, and its encoder reads the missing entries as zeros (a warning says so).

:func:`condition` runs a conditioner and returns a :class:`Completion`: the z draws,
draws of the missing entries, their posterior predictive mean
(E[x_miss | x_obs] = E_z[E[x_miss | z]], the decoder's mean averaged over the draws),
central credible bands from the quantiles of the draws, and, when the true values of the
missing entries are given, the importance-sampled conditional log-likelihood below.

The conditional log-likelihood estimator
----------------------------------------
With K proposals :math:`z_k \sim q(z \mid x_{\mathrm{obs}}, m)` (the guide, whatever the
conditioner) and weights :math:`w_k = p(x_{\mathrm{obs}} \mid z_k)\, p(z_k) /
q(z_k \mid x_{\mathrm{obs}}, m)` (for a hierarchical family, p(z_k) and q are the joint
densities of all latent sites),

.. math::  \widehat{\log p}(x_{\mathrm{miss}} \mid x_{\mathrm{obs}})
           = \log \sum_k w_k\, p(x_{\mathrm{miss}} \mid z_k) - \log \sum_k w_k ,

the logarithm of the self-normalized importance sampling estimate of
E[p(x_miss | z) | x_obs] (Owen 2013, ch. 9; the conditional likelihood of Ivanov et al.
2019 and Ma et al. 2019 for arbitrary conditioning). Both sums are unbiased estimates
(up to the same factor K) of p(x_obs, x_miss) and p(x_obs), so the estimator is
consistent as K grows and its bias is O(1/K). It is not a bound: by Jensen's inequality
each log-sum underestimates its logarithm, by about half its relative variance, and
the estimate is their difference. Since the proposal is fitted to x_obs, the weights
of the numerator (which also carry p(x_miss | z_k)) vary more than those of the
denominator, so in practice the estimator errs low (it underestimates the conditional
log-likelihood), like the IWAE bound; a larger K shrinks the error. Its Monte Carlo
standard error is reported by the delta method for a self-normalized ratio,
:math:`\mathrm{se} = \sqrt{\sum_k \tilde w_k^2 (f_k / \hat\mu - 1)^2}` with
:math:`\tilde w_k` the normalized weights, :math:`f_k = p(x_{\mathrm{miss}} \mid z_k)`
and :math:`\hat\mu = \sum_k \tilde w_k f_k` (Owen 2013, eq. 9.8).

References
----------
Owen (2013), Monte Carlo theory, methods and examples, ch. 9 (importance sampling).
Burda, Grosse & Salakhutdinov (2016), Importance weighted autoencoders, ICLR.
Ivanov, Figurnov & Vetrov (2019), Variational autoencoder with arbitrary conditioning,
ICLR.
Ma, Tschiatschek, Palla, Hernandez-Lobato, Nowozin & Zhang (2019), EDDI: efficient
dynamic discovery of high-value information with partial VAE, ICML.
Nazabal, Olmos, Ghahramani & Valera (2020), Handling incomplete heterogeneous data using
VAEs, Pattern Recognition.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyro
import torch

from .. import sites
from ..data.batch import Batch
from ..errors import ConfigError, DataError
from ..models import at_weights
from ..objectives.iwae import log_weights, vectorized_traces
from ..registry import Registry

logger = logging.getLogger(__name__)

#: name -> conditioner ``(module, x, mask, *, draws, seed, **options) -> (z, diagnostics)``
#: (module docstring).
CONDITIONERS: Registry = Registry("conditioner")

#: Default central credible levels of the bands.
DEFAULT_LEVELS = (0.5, 0.9)

#: Default number K of importance proposals of the conditional log-likelihood.
LOG_LIK_SAMPLES = 1000

#: Proposals x rows scored at once by :func:`conditional_log_likelihood`.
CHUNK_ROWS = 2**14

#: Why the guide's posterior is poor for a model trained on complete rows.
UNTRAINED_GUIDE = (
    "this model was not trained with observation masks (--missing mask / --mask-rate): "
    "its guide reads the missing entries as zeros, so q(z | x_obs) from method='guide' "
    "will be poor; retrain with --mask-rate, or use method='svi' or 'nuts'"
)


def check_mask(x: torch.Tensor, mask: torch.Tensor, name: str = "x") -> torch.Tensor:
    """``mask`` as a ``bool`` tensor on ``x``'s device, checked: the shape of ``x`` and at
    least one observed entry per row; one-line :class:`DataError` otherwise."""
    mask = torch.as_tensor(mask)
    if tuple(mask.shape) != tuple(x.shape):
        raise DataError(f"the mask has shape {tuple(mask.shape)} but {name} has {tuple(x.shape)}")
    mask = mask.to(device=x.device, dtype=torch.bool)
    seen = mask.reshape(mask.shape[0], -1).any(1)
    if not bool(seen.all()):
        row = int((~seen).nonzero()[0])
        raise DataError(
            f"{name} has {int((~seen).sum())} row(s) with no observed entry, first row {row}"
        )
    return mask


@CONDITIONERS.register("guide")
def guide_conditioner(
    module, rows: Batch, *, draws: int, seed: int = 0, **options: Any
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """z ~ q(z | x_obs, mask): the amortized guide on the zero-filled rows and the mask
    (module docstring); warns when the model was not trained with masks."""
    if options:
        raise ConfigError(f"method 'guide' takes no options; got {', '.join(sorted(options))}")
    trained = bool(getattr(module, "mask_input", False))
    if not trained and not bool(rows.mask.all()):
        warnings.warn(UNTRAINED_GUIDE, UserWarning, stacklevel=3)
    with torch.random.fork_rng(devices=_devices(rows.x)), torch.no_grad():
        torch.manual_seed(int(seed))
        z = module.posterior_sample(module.guide_input(rows), int(draws), mask=rows.mask)
    return z, {"method": "guide", "trained_with_masks": trained}


def _devices(x: torch.Tensor) -> list:
    return [x.device] if x.device.type == "cuda" else []


@torch.no_grad()
def conditional_log_likelihood(
    module,
    x_true: torch.Tensor,
    mask: torch.Tensor,
    samples: int = LOG_LIK_SAMPLES,
    seed: int = 0,
    targets: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Importance-sampled log p(x_miss | x_obs) per row and its Monte Carlo standard
    error, each ``(B,)``, in nats (module docstring).

    Parameters
    ----------
    module : LatentModule
        The model family (its observation site scores masks).
    x_true : Tensor
        Complete rows ``(B, *data_shape)``: the observed entries and the true values
        of the missing ones.
    mask : Tensor
        ``bool``, ``True`` where observed (the entries scored by the weights).
    samples : int
        K proposals per row.
    seed : int
        Seed of the proposals (the global random state is left as it was).
    targets : Tensor, optional
        The rows' conditions (``Batch.y``), for a conditional family.
    """
    samples = int(samples)
    if samples < 1:
        raise ConfigError(f"the conditional log-likelihood needs samples >= 1; got {samples}")
    mask = check_mask(x_true, mask, "x_true")
    if not bool(torch.isfinite(x_true).all()):
        raise DataError("x_true must hold finite values at every entry (the true values)")
    rows = x_true.shape[0]
    chunk = max(1, CHUNK_ROWS // max(1, rows))
    log_w, log_f = [], []
    was_training = module.training
    module.eval()
    try:
        # a Bayesian decoder at the posterior mean of its weights (docs/bayesian-decoder.md)
        with (
            torch.random.fork_rng(devices=_devices(x_true)),
            pyro.validation_enabled(False),
            at_weights(module),
        ):
            torch.manual_seed(int(seed))
            done = 0
            while done < samples:
                k = min(chunk, samples - done)
                lw, lf = _weights_chunk(module, Batch(x_true, targets, mask), k)
                log_w.append(lw)
                log_f.append(lf)
                done += k
    finally:
        module.train(was_training)
    log_w, log_f = torch.cat(log_w), torch.cat(log_f)  # (K, B)
    log_norm = torch.logsumexp(log_w, 0)
    log_mu = torch.logsumexp(log_w + log_f, 0) - log_norm
    w = torch.exp(log_w - log_norm)  # normalized weights
    ratio = torch.exp((log_f - log_mu).clamp(max=80.0))
    se = (w.pow(2) * (ratio - 1).pow(2)).sum(0).sqrt()
    return log_mu, se


def _weights_chunk(module, rows: Batch, k: int):
    """log w_k (observed entries) and log p(x_miss | z_k), each ``(k, B)``, from the
    traces of ``k`` proposals per row."""
    x = rows.x
    model_tr, guide_tr = vectorized_traces(module.model, module.guide, rows, k)
    lw, _, _ = log_weights(model_tr, guide_tr)
    obs = model_tr.nodes[sites.OBS]["fn"]
    complement = getattr(obs, "complement", None)
    if complement is None:
        raise ConfigError(
            f"the {type(module).__name__} family's observation site does not score masks"
        )
    lf = complement().log_prob(x)
    return lw.reshape(k, x.shape[0]), lf.reshape(k, x.shape[0])


@dataclass
class Completion:
    """A model conditioned on partly observed rows (see the module docstring).

    Attributes
    ----------
    z : dict
        Latent site -> posterior draws ``(S, B, dim)``.
    x : Tensor
        Posterior predictive draws of the rows ``(S, B, *data_shape)``: the missing
        entries drawn from p(x | z), the observed ones equal to the data.
    mean : Tensor
        E[x_miss | x_obs] at the missing entries (the decoder's mean averaged over the
        z draws) and the data at the observed ones, ``(B, *data_shape)``.
    bands : dict
        Level -> (lower, upper), each ``(B, *data_shape)``: the central credible band
        of each missing entry from the quantiles (1 - level) / 2 and (1 + level) / 2 of
        its draws (equal to the data at observed entries).
    mask : Tensor
        ``bool`` ``(B, *data_shape)``, ``True`` where observed.
    observed : Tensor
        The rows, zero at the missing entries.
    log_lik : Tensor or None
        log p(x_miss | x_obs) per row (nats) when the true values were given.
    log_lik_se : Tensor or None
        Its Monte Carlo standard error per row.
    diagnostics : dict
        What the conditioner reports (method, and e.g. R-hat or ESS for MCMC).
    method : str
        The conditioner's name.
    """

    z: dict[str, torch.Tensor]
    x: torch.Tensor
    mean: torch.Tensor
    bands: dict[float, tuple[torch.Tensor, torch.Tensor]]
    mask: torch.Tensor
    observed: torch.Tensor
    log_lik: torch.Tensor | None = None
    log_lik_se: torch.Tensor | None = None
    diagnostics: dict[str, Any] = field(default_factory=dict)
    method: str = "guide"

    @property
    def levels(self) -> tuple[float, ...]:
        return tuple(self.bands)

    def missing_values(self) -> torch.Tensor:
        """The draws of the missing entries only, ``(S, number of missing entries)``
        (row-major over rows and entries)."""
        return self.x[:, ~self.mask]

    def to_arviz(self):
        """An ArviZ object (InferenceData, or a DataTree on ArviZ >= 1): ``posterior``
        holds the z draws, ``posterior_predictive`` the draws of x (one chain of S
        draws), ``observed_data`` the rows (NaN at missing entries) and the mask."""
        from .. import arviz_compat

        def chain(t: torch.Tensor):
            return t.detach().cpu().unsqueeze(0).numpy()

        observed = torch.where(self.mask, self.observed, torch.full_like(self.observed, math.nan))
        groups = {
            "posterior": {site: chain(v) for site, v in self.z.items()},
            "posterior_predictive": {"x": chain(self.x)},
            "observed_data": {
                "x": observed.detach().cpu().numpy(),
                "mask": self.mask.detach().cpu().numpy(),
            },
        }
        return arviz_compat.from_groups(groups)


#: Elements of draws per call of ``torch.quantile`` (which refuses inputs above 2^24).
QUANTILE_ELEMENTS = 2**22


def _quantiles(draws: torch.Tensor, levels: Sequence[float]) -> dict:
    """Level -> (lower, upper) central quantiles over the draws (dim 0), row chunk by
    row chunk."""
    probs = [p for level in levels for p in ((1 - level) / 2, (1 + level) / 2)]
    q = draws.new_tensor(probs)
    per_row = max(1, draws[:, :1].numel())
    step = max(1, QUANTILE_ELEMENTS // per_row)
    parts = [torch.quantile(c, q, dim=0) for c in draws.split(step, dim=1)]
    qs = torch.cat(parts, dim=1)  # (2 * levels, B, ...)
    return {float(level): (qs[2 * i], qs[2 * i + 1]) for i, level in enumerate(levels)}


def check_levels(levels: Sequence[float]) -> tuple[float, ...]:
    """Credible levels in (0, 1); one-line :class:`ConfigError` otherwise."""
    try:
        out = tuple(float(v) for v in levels)
    except (TypeError, ValueError):
        raise ConfigError(f"levels must be numbers in (0, 1); got {levels!r}") from None
    if not out or not all(0 < v < 1 for v in out):
        raise ConfigError(f"levels must be numbers in (0, 1); got {list(out)}")
    return out


@torch.no_grad()
def condition(
    module,
    x: torch.Tensor,
    mask: torch.Tensor,
    method: str = "guide",
    draws: int = 1000,
    levels: Sequence[float] = DEFAULT_LEVELS,
    x_true: torch.Tensor | None = None,
    seed: int = 0,
    log_lik_samples: int = LOG_LIK_SAMPLES,
    targets: torch.Tensor | None = None,
    noise=None,
    **options: Any,
) -> Completion:
    """Condition ``module`` on rows ``x`` observed where ``mask`` is ``True``.

    Parameters
    ----------
    module : LatentModule
        A model family with latent sites (networks fixed).
    x : Tensor
        Rows ``(B, *data_shape)``; the missing entries may hold anything (NaN too).
    mask : Tensor
        ``bool`` of ``x``'s shape, ``True`` where observed; every row observed somewhere.
    method : str
        A name in :data:`CONDITIONERS`.
    draws : int
        Posterior draws S.
    levels : sequence of float
        Central credible levels of the bands.
    x_true : Tensor, optional
        Complete rows: with them, the conditional log-likelihood of their values at the
        missing entries (module docstring) with ``log_lik_samples`` proposals.
    seed : int
        Seed of every draw (the global random state is left as it was).
    targets : Tensor, optional
        The rows' conditions in the family's encoding (``module.targets(y)``), for a
        conditional family: the posterior is then p(z | x_obs, c).
    noise : GaussianDiscrepancy, optional
        A model discrepancy (:mod:`pyrovae.inference.discrepancy`) that replaces the
        family's likelihood of the observed entries in the conditioned program, and
        gives the missing entries their conditional given the observed ones; with
        ``x_true``, the conditional log-likelihood is then its Monte Carlo estimate over
        the posterior draws. A discrepancy that infers its scale needs a conditioner
        that samples every site of the program (``"nuts"``).
    **options
        Options of the conditioner.
    """
    if not getattr(module, "has_latent_sites", False):
        raise ConfigError("conditioning needs a model with latent variables (not an autoencoder)")
    draws = int(draws)
    if draws < 2:
        raise ConfigError(f"conditioning needs draws >= 2; got {draws}")
    levels = check_levels(levels)
    mask = check_mask(x, mask)
    filled = torch.where(mask, x, torch.zeros_like(x))
    rows = Batch(filled, targets, mask)
    conditioner: Callable = CONDITIONERS.get(method)
    target = module
    if noise is not None:
        noise.check_rows(x)
        if noise.latent_sites and not getattr(conditioner, "samples_every_site", False):
            raise ConfigError(
                f"method {method!r} cannot sample the discrepancy's scale; use "
                "method='nuts' or a discrepancy with infer_scale=False"
            )
        target = noise.program(module)
    if x_true is not None:
        x_true = torch.as_tensor(x_true, dtype=x.dtype, device=x.device)
        if tuple(x_true.shape) != tuple(x.shape):
            raise DataError(f"x_true has shape {tuple(x_true.shape)} but x has {tuple(x.shape)}")
    was_training = module.training
    module.eval()
    log_lik = log_lik_se = None
    try:
        with at_weights(module):  # a Bayesian decoder at the posterior mean of its weights
            z, diagnostics = conditioner(target, rows, draws=draws, seed=seed, **options)
        with torch.random.fork_rng(devices=_devices(x)), at_weights(module):
            torch.manual_seed(int(seed) + 1)
            px = module.decode_rows(module.code_of(z), rows)  # batch (S, B)
            if noise is None:
                x_draws = torch.where(mask, filled, px.sample())
                mean = torch.where(mask, filled, px.mean.mean(0))
            else:
                scale = z.get(sites.DISCREPANCY_SCALE)
                scale = None if scale is None else scale[..., 0]
                x_draws, mean = noise.complete(filled, mask, px.mean, scale)
                if x_true is not None:
                    log_lik, log_lik_se = noise.log_lik_missing(x_true, mask, px.mean, scale)
    finally:
        module.train(was_training)
    if x_true is not None and noise is None:
        log_lik, log_lik_se = conditional_log_likelihood(
            module, x_true, mask, samples=log_lik_samples, seed=seed, targets=targets
        )
    logger.debug("conditioned %d rows by %s with %d draws", x.shape[0], method, draws)
    return Completion(
        z=z,
        x=x_draws,
        mean=mean,
        bands=_quantiles(x_draws, levels),
        mask=mask,
        observed=filled,
        log_lik=log_lik,
        log_lik_se=log_lik_se,
        diagnostics=dict(diagnostics),
        method=method,
    )
