r"""A correlated Gaussian model discrepancy for conditioning a trained model on partly
observed rows.

A decoder seldom reproduces a row exactly, and its error is rarely the independent noise
of the likelihood it was trained with: the error of a smooth decoder on smooth data (a
volatility surface, a spectrum) is itself smooth, so that knowing it at the observed
entries says much about it at the missing ones. Following Kennedy & O'Hagan (2001), the
row is modelled as the decoder's mean plus a discrepancy,

.. math::  x = m(z) + δ, \qquad δ \sim N(0,\, s\,Σ), \qquad Σ = S + ε\,I ,

with S the sample covariance of the decoder's residuals :math:`m(\hat z(x_n)) - x_n` on
rows the user supplies (:meth:`GaussianDiscrepancy.from_residuals`), ε a nugget, and s
a scale. The nugget makes Σ invertible when there are fewer rows than entries, and it
bounds every conditional variance below: with many entries observed, the bands of the
missing ones are about √ε wide, so ε decides their calibration. It is chosen by
maximum likelihood on validation residuals r_v (empirical Bayes; :func:`select_nugget`):

.. math::  \hat ε = \arg\max_ε \sum_v \log N(r_v;\, 0,\, S + ε I)
           = \arg\max_ε \sum_v \sum_i \Big[-\frac{(u_i^\top r_v)^2}{2(λ_i + ε)}
             - \tfrac12 \log(λ_i + ε)\Big]

with S = U diag(λ) U^T, over a grid of ε / mean(diag S) from 10^-16 to 1 (0.1 decade
apart). Residuals of smooth data under a smooth decoder lie close to a subspace of S's
leading eigenvectors; the likelihood then sets ε to the size of what is left outside
it, which a fixed fraction would over- or understate by orders of magnitude.

With ``infer_scale=False`` s = 1 (new rows' errors are like those rows'); with
``infer_scale=True`` s is a latent variable per row with prior LogNormal(0, τ²),
τ = ``scale_prior_sd`` (centred on the supplied rows' error size, one e-fold a standard
deviation), sampled jointly with z by MCMC: a scale mixture of Gaussians, which lets a
row whose error is larger or smaller than typical widen or narrow its own bands.

The observed entries o of a row then have the likelihood

.. math::  x_o \mid z, s \sim N\big(m_o(z),\; s\,Σ_{oo}\big)

(it replaces the family's observation site in the conditioned program), and, given z and
s, the missing entries h are Gaussian (the conditional of a joint Gaussian; Rasmussen &
Williams 2006, eq. A.6):

.. math::  x_h \mid z, s, x_o \sim N\big(m_h(z) + G\,(x_o - m_o(z)),\; s\,C\big),
           \quad G = Σ_{ho} Σ_{oo}^{-1}, \quad C = Σ_{hh} - Σ_{ho} Σ_{oo}^{-1} Σ_{oh} .

The posterior predictive draws of a completion take one draw of x_h from this
conditional per posterior draw of (z, s); its mean is the average of the conditional
means. With the true values of the missing entries, the conditional log-likelihood is
the simple Monte Carlo estimate over the S posterior draws,

.. math::  \widehat{\log p}(x_h \mid x_o) = \log \frac1S \sum_s N\big(x_h;\,
           μ_h(z_s, s_s),\; s_s C\big),

consistent as S grows (p(x_h | x_o) = E[p(x_h | z, s, x_o) | x_o]) and, by Jensen's
inequality, biased low by about half the relative variance of the terms; its standard
error is the delta method's sd / (√S · mean) of the terms, which treats the draws as
independent (MCMC draws are correlated, so it understates the error).

**A scale calibrated to the observation pattern.** Σ is fitted to whole residual rows,
while a completion uses one conditional of it: the missing entries given the observed
ones. Where that conditional extrapolates (the wings of a volatility surface from its
near-the-money strikes), its variance C is estimated from the average behaviour of the
reference rows and can understate new rows' errors. With ``calibration`` rows (held-out
residuals r_c, c = 1…n), each observation pattern gets its own fixed scale, the
maximum-likelihood s of the missing entries' conditional on those rows,

.. math::  \hat s = \arg\max_s \sum_c \log N\big(r_{c,h};\, G\,r_{c,o},\; s\,C\big)
           = \frac{1}{n\,|h|} \sum_c \big\lVert L_C^{-1} (r_{c,h} - G\,r_{c,o})
           \big\rVert^2 ,

(ŝ = 1 for a pattern with nothing missing), and the pattern's discrepancy is
δ ~ N(0, ŝ s Σ): the calibrated scale multiplies the observed entries' covariance too, as
an inferred s does, so that z's posterior widens with the bands. This is empirical Bayes
on the predictive the completion uses, as the nugget is on the joint density; with
``infer_scale`` the per-row s then has its prior centred on ŝ.

With Σ = σ² I and s fixed the discrepancy is the Gaussian likelihood N(m(z), σ²) itself,
entry by entry; the tests check that the conditioned program's density is then the
family's own.

References
----------
Kennedy & O'Hagan (2001), Bayesian calibration of computer models, JRSS B 63(3).
Brynjarsdóttir & O'Hagan (2014), Learning about physical parameters: the importance of
model discrepancy, Inverse Problems 30.
Rasmussen & Williams (2006), Gaussian processes for machine learning, appendix A.2.
West (1987), On scale mixtures of normal distributions, Biometrika 74(3).
Wilson, Borovitskiy, Terenin, Mostowski & Deisenroth (2020), Efficiently sampling
functions from Gaussian process posteriors, ICML (Matheron's rule).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from .. import sites
from ..data.batch import Batch
from ..errors import ConfigError, DataError

#: Default nugget: chosen by the validation residuals' likelihood (see
#: :func:`select_nugget`); a number is ε as a fraction of the mean residual variance.
DEFAULT_NUGGET = "auto"
#: The relative nuggets :func:`select_nugget` tries: 10^-16 to 1 in steps of 0.1 decade.
NUGGET_GRID = tuple(10.0 ** (-k / 10) for k in range(160, -1, -1))
#: Fraction of the rows held out to choose the nugget when no validation rows are given.
NUGGET_HOLDOUT = 0.2
#: Default τ, the sd of log s under the scale's LogNormal(0, τ²) prior.
DEFAULT_SCALE_PRIOR_SD = 1.0

_LOG_2PI = math.log(2 * math.pi)


@dataclass
class _Geometry:
    """What one observation pattern needs: indices, Cholesky factors and the gain."""

    observed: torch.Tensor  # indices o
    hidden: torch.Tensor  # indices h
    chol_oo: torch.Tensor  # L with L L^T = Σ_oo
    gain: torch.Tensor  # G = Σ_ho Σ_oo^-1, (|h|, |o|)
    chol_c: torch.Tensor  # L_c with L_c L_c^T = C
    half_logdet_oo: torch.Tensor
    half_logdet_c: torch.Tensor
    #: ŝ, the pattern's calibrated scale (1 without calibration rows); the factors
    #: above are those of ŝ Σ.
    scale: float = 1.0


@dataclass
class GaussianDiscrepancy:
    """δ ~ N(0, s Σ) between the decoder's mean and the data (module docstring).

    Parameters
    ----------
    covariance : Tensor
        Σ, ``(D, D)`` over the flattened entries of a row (symmetric positive definite;
        kept in float64).
    infer_scale : bool or "nugget"
        Sample the scale s of Σ per row (prior LogNormal(0, τ²)) instead of fixing
        s = 1; needs a conditioner that samples every site of the program (``"nuts"``).
        ``"nugget"`` (with :meth:`from_residuals`): the scale multiplies the nugget
        alone, Σ = S + s ε I (:class:`NuggetScaledDiscrepancy`).
    scale_prior_sd : float
        τ.
    calibration : Tensor, optional
        Held-out residual rows ``(n, D)`` that fix a scale ŝ per observation pattern,
        the maximum-likelihood scale of the missing entries' conditional on them (module
        docstring); not with ``infer_scale="nugget"``.

    Use :meth:`from_residuals` (or an estimator's ``discrepancy(X)``) to build one from
    a model's residuals, and pass it as ``noise=`` to ``condition``.
    """

    covariance: torch.Tensor
    infer_scale: bool = False
    scale_prior_sd: float = DEFAULT_SCALE_PRIOR_SD
    #: The nugget ε in Σ = S + ε I (data units squared), where known.
    nugget: float | None = None
    #: Mean validation log N(r_v; 0, Σ) per row when ε was selected on validation rows.
    validation_loglik: float | None = None
    calibration: torch.Tensor | None = None
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        cov = torch.as_tensor(self.covariance, dtype=torch.float64)
        if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
            raise ConfigError(f"the discrepancy covariance must be square; got {tuple(cov.shape)}")
        if not bool(torch.isfinite(cov).all()):
            raise ConfigError("the discrepancy covariance has non-finite entries")
        if not float(self.scale_prior_sd) > 0:
            raise ConfigError(f"scale_prior_sd must be > 0; got {self.scale_prior_sd!r}")
        if self.infer_scale not in (False, True, "nugget"):
            raise ConfigError(
                f"infer_scale must be false, true or 'nugget'; got {self.infer_scale!r}"
            )
        self.covariance = 0.5 * (cov + cov.T)
        self.scale_prior_sd = float(self.scale_prior_sd)
        if self.calibration is not None:
            if self.infer_scale == "nugget":
                raise ConfigError(
                    "calibration rows fix a scale of all of Σ; not with infer_scale='nugget'"
                )
            self.calibration = _residual_rows(
                self.calibration,
                "calibration residuals",
                1,
                (cov.shape[0], "the discrepancy covers"),
            )
        self.infer_scale = bool(self.infer_scale)

    @classmethod
    def from_residuals(
        cls,
        residuals,
        nugget: float | str = DEFAULT_NUGGET,
        infer_scale: bool = False,
        scale_prior_sd: float = DEFAULT_SCALE_PRIOR_SD,
        validation=None,
        seed: int = 0,
        calibrate: bool = False,
    ) -> GaussianDiscrepancy:
        """Σ = S + ε I from residual rows ``(n, *data_shape)`` (decoder mean minus data).

        Parameters
        ----------
        residuals : array-like
            Rows whose sample covariance is S.
        nugget : float or "auto"
            ε as a fraction of the mean of diag S, or ``"auto"``: chosen by the
            likelihood of ``validation`` (module docstring); without validation rows,
            a random :data:`NUGGET_HOLDOUT` of ``residuals`` (``seed``) is held out to
            choose it and S is then the covariance of all rows.
        infer_scale, scale_prior_sd
            As the class's.
        validation : array-like, optional
            Validation residual rows for ``nugget="auto"`` and ``calibrate``.
        seed : int
            Seed of the held-out split.
        calibrate : bool
            Fix a scale per observation pattern on the validation rows (the
            ``calibration`` of the class; module docstring). Without ``validation`` the
            held-out fifth of ``residuals`` serves, and S is then the covariance of the
            other rows only, so that the scale is fitted out of sample.
        """
        r = _residual_rows(residuals, "residuals")
        auto = isinstance(nugget, str)
        if auto and nugget != "auto":
            raise ConfigError(f"nugget must be a number > 0 or 'auto'; got {nugget!r}")
        if not auto and not float(nugget) > 0:
            raise ConfigError(f"nugget must be > 0 (it makes Σ invertible); got {nugget!r}")
        loglik, fit_rows, val_rows = None, r, None
        if auto or calibrate:
            what = "choosing the nugget" if auto else "calibrating the scale"
            if validation is None:
                n_val = max(1, int(round(NUGGET_HOLDOUT * r.shape[0])))
                if r.shape[0] - n_val < 2:
                    raise DataError(f"{what} needs at least 3 residual rows; got {r.shape[0]}")
                order = torch.randperm(r.shape[0], generator=torch.Generator().manual_seed(seed))
                fit_rows, val_rows = r[order[n_val:]], r[order[:n_val]]
            else:
                val_rows = _residual_rows(
                    validation, "validation residuals", 1, (r.shape[1], "the residuals")
                )
        fit_cov = _covariance(fit_rows)
        if auto:
            nugget, loglik = select_nugget(fit_cov, val_rows)
        # S from every row, except when held-out rows of ``residuals`` calibrate the scale
        s = fit_cov if calibrate or fit_rows is r else _covariance(r)
        eps = float(nugget) * float(torch.diagonal(s).mean())
        eye = torch.eye(s.shape[0], dtype=s.dtype)
        kind = NuggetScaledDiscrepancy if infer_scale == "nugget" else cls
        out = kind(
            s + eps * eye,
            infer_scale,
            scale_prior_sd,
            nugget=eps,
            calibration=val_rows if calibrate else None,
        )
        out.validation_loglik = loglik
        return out

    # -- geometry --------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """D, the number of entries of a row."""
        return int(self.covariance.shape[0])

    @property
    def latent_sites(self) -> tuple[str, ...]:
        """The sample sites the discrepancy adds to a conditioned program."""
        return (sites.DISCREPANCY_SCALE,) if self.infer_scale else ()

    def check_rows(self, x: torch.Tensor) -> None:
        """One-line :class:`DataError` unless rows ``x`` have D entries each."""
        d = int(x[0].numel()) if x.shape[0] else 0
        if d != self.size:
            raise DataError(f"the discrepancy covers {self.size} entries but a row has {d}")

    def geometry(self, mask_row: torch.Tensor) -> _Geometry:
        """The factors of one observation pattern (``mask_row`` ``bool`` ``(D,)``),
        computed once per pattern."""
        key = mask_row.detach().cpu().numpy().tobytes()
        found = self._cache.get(key)
        if found is not None:
            return found
        m = mask_row.detach().cpu().reshape(-1)
        o, h = m.nonzero()[:, 0], (~m).nonzero()[:, 0]
        cov = self.covariance
        chol_oo, info = torch.linalg.cholesky_ex(cov[o][:, o])
        if int(info) != 0:
            raise ConfigError(
                "the discrepancy covariance of the observed entries is not positive "
                "definite; rebuild it with a larger nugget"
            )
        cross = cov[o][:, h]  # Σ_oh
        solved = torch.cholesky_solve(cross, chol_oo)  # Σ_oo^-1 Σ_oh
        cond = cov[h][:, h] - cross.T @ solved
        cond = 0.5 * (cond + cond.T)
        chol_c, info = torch.linalg.cholesky_ex(cond)
        if int(info) != 0:
            raise ConfigError(
                "the discrepancy's conditional covariance of the missing entries is not "
                "positive definite; rebuild it with a larger nugget"
            )
        scale = self._calibrated_scale(o, h, solved.T, chol_c)
        root = math.sqrt(scale)
        geo = _Geometry(
            observed=o,
            hidden=h,
            chol_oo=root * chol_oo,
            gain=solved.T,
            chol_c=root * chol_c,
            half_logdet_oo=torch.log(root * torch.diagonal(chol_oo)).sum(),
            half_logdet_c=torch.log(root * torch.diagonal(chol_c)).sum(),
            scale=scale,
        )
        self._cache[key] = geo
        return geo

    def _calibrated_scale(self, o, h, gain, chol_c) -> float:
        """ŝ of one pattern (module docstring): 1 without calibration rows or without a
        missing entry."""
        if self.calibration is None or h.numel() == 0:
            return 1.0
        rows = self.calibration
        resid = rows[:, h] - rows[:, o] @ gain.T  # r_h - G r_o, (n, |h|)
        a = torch.linalg.solve_triangular(chol_c, resid.T, upper=False)
        return float(a.square().mean())

    def pattern_scale(self, mask_row: torch.Tensor) -> float:
        """ŝ, the calibrated scale of the observation pattern ``mask_row`` (``bool``
        ``(D,)``; 1 without calibration rows): the pattern's discrepancy is ŝ Σ."""
        if self.calibration is None:
            return 1.0  # nothing to factorize
        return self.geometry(mask_row).scale

    # -- densities and draws ---------------------------------------------------------------
    def log_prob_observed(
        self,
        x_row: torch.Tensor,
        mean: torch.Tensor,
        mask_row: torch.Tensor,
        scale: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """log N(x_o; m_o, s Σ_oo) of one row: ``x_row`` ``(D,)``, ``mean`` ``(..., D)``,
        ``scale`` ``(...)`` (None: s = 1); shape ``mean.shape[:-1]``, float64."""
        geo = self.geometry(mask_row)
        o = geo.observed.to(mean.device)
        resid = (x_row.reshape(-1)[o].double() - mean.double()[..., o]).unsqueeze(-1)
        chol = geo.chol_oo.to(mean.device)
        a = torch.linalg.solve_triangular(chol, resid, upper=False).squeeze(-1)
        quad, n = a.square().sum(-1), int(o.numel())
        lp = -0.5 * quad - geo.half_logdet_oo.to(mean.device) - 0.5 * n * _LOG_2PI
        if scale is not None:
            s = scale.double()
            lp = lp + 0.5 * quad - 0.5 * quad / s - 0.5 * n * torch.log(s)
        return lp

    def conditional(
        self, x_row: torch.Tensor, mean: torch.Tensor, mask_row: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(conditional means ``(..., |h|)``, the Cholesky factor of C) of the missing
        entries of one row given its observed ones, for decoder means ``(..., D)``."""
        geo = self.geometry(mask_row)
        o, h = geo.observed.to(mean.device), geo.hidden.to(mean.device)
        m = mean.double()
        resid = x_row.reshape(-1)[o].double() - m[..., o]
        mu = m[..., h] + resid @ geo.gain.to(mean.device).T
        return mu, geo.chol_c.to(mean.device)

    def complete(
        self, x: torch.Tensor, mask: torch.Tensor, mean: torch.Tensor, scale=None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior predictive draws and the predictive mean of rows ``x``
        ``(B, *shape)`` observed where ``mask``: ``mean`` ``(S, B, *shape)`` the
        decoder's means at the S posterior draws, ``scale`` ``(S, B)`` the draws of s
        (None: s = 1). Returns ``(draws (S, B, *shape), mean (B, *shape))``, equal to
        ``x`` at the observed entries."""
        n_draws, rows = mean.shape[0], x.shape[0]
        flat_x = x.reshape(rows, -1)
        draws = flat_x.unsqueeze(0).repeat(n_draws, 1, 1)
        average = flat_x.clone()
        for b, x_row, m_row, mean_row, s_row in self._partial_rows(x, mask, mean, scale):
            values, mu = self.complete_row(x_row, m_row, mean_row, s_row)
            draws[:, b, ~m_row] = values.to(draws.dtype)
            average[b, ~m_row] = mu.mean(0).to(average.dtype)
        return draws.reshape(mean.shape), average.reshape(x.shape)

    def log_lik_missing(
        self, x_true: torch.Tensor, mask: torch.Tensor, mean: torch.Tensor, scale=None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Monte Carlo log p(x_h | x_o) per row and its standard error, each ``(B,)``
        (module docstring), from the decoder's means ``(S, B, *shape)`` and scales
        ``(S, B)`` at the posterior draws; 0 for a fully observed row."""
        n_draws, rows = mean.shape[0], x_true.shape[0]
        values = torch.zeros(rows, dtype=torch.float64, device=x_true.device)
        errors = torch.zeros_like(values)
        for b, x_row, m_row, mean_row, s_row in self._partial_rows(x_true, mask, mean, scale):
            lf = self.log_lik_row(x_row, m_row, mean_row, s_row)  # (S,)
            values[b] = torch.logsumexp(lf, 0) - math.log(n_draws)
            w = torch.exp(lf - lf.max())
            errors[b] = w.std() / (math.sqrt(n_draws) * w.mean())
        return values, errors

    @staticmethod
    def _partial_rows(x, mask, mean, scale):
        """(row index, x_row (D,), mask_row (D,), means (S, D), scales (S,) or None) of
        each row with a missing entry."""
        n_draws, rows = mean.shape[0], x.shape[0]
        flat_x, flat_m = x.reshape(rows, -1), mask.reshape(rows, -1)
        flat_mean = mean.reshape(n_draws, rows, -1)
        for b in range(rows):
            if not bool(flat_m[b].all()):
                s_row = None if scale is None else scale[:, b].double().to(mean.device)
                yield b, flat_x[b], flat_m[b], flat_mean[:, b], s_row

    def complete_row(self, x_row, mask_row, mean_row, scale_row):
        """One draw of the missing entries per posterior draw, ``(S, |h|)``, and their
        conditional means ``(S, |h|)``, for one row."""
        mu, chol = self.conditional(x_row, mean_row, mask_row)
        eps = torch.randn(mu.shape[0], mu.shape[-1], dtype=mu.dtype, device=mu.device)
        noise = eps @ chol.T
        if scale_row is not None:
            noise = noise * scale_row.sqrt().unsqueeze(-1)
        return mu + noise, mu

    def log_lik_row(self, x_row, mask_row, mean_row, scale_row) -> torch.Tensor:
        """log N(x_h; μ_h, s C) of one row at each posterior draw, ``(S,)``."""
        geo = self.geometry(mask_row)
        mu, chol = self.conditional(x_row, mean_row, mask_row)
        resid = (x_row[~mask_row].double() - mu).unsqueeze(-1)
        a = torch.linalg.solve_triangular(chol, resid, upper=False).squeeze(-1)
        quad, n = a.square().sum(-1), int(mu.shape[-1])
        lf = -0.5 * quad - geo.half_logdet_c.to(mu.device) - 0.5 * n * _LOG_2PI
        if scale_row is not None:
            lf = lf + 0.5 * quad - 0.5 * quad / scale_row - 0.5 * n * torch.log(scale_row)
        return lf

    # -- the conditioned program -----------------------------------------------------------
    def observe(self, batch: Batch, mean: torch.Tensor) -> None:
        """The discrepancy's sites for the rows of ``batch`` given the decoder's means
        ``(..., B, *shape)``: the scale per row (when inferred) and the factor
        log N(x_o; m_o, s Σ_oo), inside a plate over the rows."""
        rows = batch.x.shape[0]
        flat_mean = mean.reshape(*mean.shape[: mean.dim() - batch.x.dim() + 1], -1)
        flat_x = batch.x.reshape(rows, -1)
        mask = batch.mask.reshape(rows, -1)
        with pyro.plate(sites.DISCREPANCY_PLATE, rows):
            scale = None
            if self.infer_scale:
                prior = dist.LogNormal(
                    torch.zeros(1, dtype=mean.dtype, device=mean.device), self.scale_prior_sd
                ).to_event(1)
                scale = pyro.sample(sites.DISCREPANCY_SCALE, prior)[..., 0]
            lp = torch.stack(
                [
                    self.log_prob_observed(
                        flat_x[b],
                        flat_mean[..., b, :],
                        mask[b],
                        None if scale is None else scale[..., b],
                    )
                    for b in range(rows)
                ],
                dim=-1,
            )
            # computed in float64, scored in the program's own precision (a float64
            # potential would promote the sampler's state and the networks' inputs)
            pyro.factor(sites.DISCREPANCY, lp.to(mean.dtype))

    def program(self, module) -> WithDiscrepancy:
        """``module`` with its observation site replaced by this discrepancy."""
        return WithDiscrepancy(module, self)


@dataclass
class _EigenGeometry:
    """One observation pattern under Σ = S + s ε I: S_oo = V diag(λ) Vᵀ, A = S_ho V."""

    observed: torch.Tensor
    hidden: torch.Tensor
    lam: torch.Tensor
    basis: torch.Tensor  # V, (|o|, |o|)
    cross: torch.Tensor  # A, (|h|, |o|)


class NuggetScaledDiscrepancy(GaussianDiscrepancy):
    r"""δ ~ N(0, S + s ε I) with the nugget's scale s sampled per row (LogNormal(0, τ²)).

    The residuals' covariance S is kept as estimated, and only the part of the error
    outside its span (the nugget) gets a row's own scale: the errors of new rows in the
    directions S covers resemble the reference rows', while what S leaves out can differ
    between rows by orders of magnitude, and it alone sets the bands' width where many
    neighbours are observed. With S_oo = V diag(λ) Vᵀ (once per observation pattern),

    .. math::  \log N(r_o; 0, S_{oo} + sεI) = -\frac12 \sum_i \frac{(v_i^\top r_o)^2}{λ_i
               + sε} - \frac12 \sum_i \log(λ_i + sε) - \frac{|o|}2 \log 2π ,

    the conditional mean of the missing entries is m_h + A diag(1/(λ + sε)) Vᵀ r_o with
    A = S_ho V, and their draws follow Matheron's rule: with a joint draw δ' ~ N(0, S + sεI)
    (S through its eigendecomposition), x_h = μ_h + δ'_h − A diag(1/(λ + sε)) Vᵀ δ'_o, a
    draw of the conditional (Wilson et al. 2020) without factorizing it per draw.

    Built by :meth:`GaussianDiscrepancy.from_residuals` with ``infer_scale="nugget"``.
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.nugget is None or not float(self.nugget) > 0:
            raise ConfigError("a nugget-scaled discrepancy needs its nugget ε > 0")
        self.infer_scale = "nugget"
        eye = torch.eye(self.size, dtype=self.covariance.dtype)
        self.signal = self.covariance - float(self.nugget) * eye
        self._full: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def latent_sites(self) -> tuple[str, ...]:
        return (sites.DISCREPANCY_SCALE,)

    def eigen_geometry(self, mask_row: torch.Tensor) -> _EigenGeometry:
        """S_oo's eigendecomposition and A = S_ho V for one pattern (cached)."""
        key = b"eig" + mask_row.detach().cpu().numpy().tobytes()
        found = self._cache.get(key)
        if found is not None:
            return found
        m = mask_row.detach().cpu().reshape(-1)
        o, h = m.nonzero()[:, 0], (~m).nonzero()[:, 0]
        lam, basis = torch.linalg.eigh(self.signal[o][:, o])
        geo = _EigenGeometry(o, h, lam.clamp_min(0.0), basis, self.signal[h][:, o] @ basis)
        self._cache[key] = geo
        return geo

    def _variances(self, geo: _EigenGeometry, scale, like: torch.Tensor) -> torch.Tensor:
        s = torch.ones(like.shape[:-1], dtype=torch.float64, device=like.device)
        if scale is not None:
            s = scale.double().to(like.device).expand(like.shape[:-1])
        return geo.lam.to(like.device) + s.unsqueeze(-1) * float(self.nugget)

    def log_prob_observed(self, x_row, mean, mask_row, scale=None) -> torch.Tensor:
        """log N(x_o; m_o, S_oo + s ε I) of one row (class docstring)."""
        geo = self.eigen_geometry(mask_row)
        o = geo.observed.to(mean.device)
        resid = x_row.reshape(-1)[o].double() - mean.double()[..., o]
        u = resid @ geo.basis.to(mean.device)
        var = self._variances(geo, scale, u)
        n = int(o.numel())
        return -0.5 * (u.square() / var).sum(-1) - 0.5 * var.log().sum(-1) - 0.5 * n * _LOG_2PI

    def conditional(self, x_row, mean, mask_row, scale=None):
        """(conditional means ``(..., |h|)``, None): the conditional covariance depends
        on s; :meth:`complete` draws through Matheron's rule instead."""
        geo = self.eigen_geometry(mask_row)
        o, h = geo.observed.to(mean.device), geo.hidden.to(mean.device)
        m = mean.double()
        u = (x_row.reshape(-1)[o].double() - m[..., o]) @ geo.basis.to(mean.device)
        var = self._variances(geo, scale, u)
        return m[..., h] + (u / var) @ geo.cross.to(mean.device).T, None

    def _joint_draws(self, n: int, scale: torch.Tensor, device) -> torch.Tensor:
        """``n`` draws of δ' ~ N(0, S + s_k ε I) ``(n, D)``, one scale per draw."""
        if self._full is None:
            lam, u = torch.linalg.eigh(self.signal)
            self._full = (lam.clamp_min(0.0).sqrt(), u)
        root, u = (t.to(device) for t in self._full)
        w = torch.randn(n, self.size, dtype=torch.float64, device=device)
        e = torch.randn(n, self.size, dtype=torch.float64, device=device)
        return (w * root) @ u.T + (scale.double() * float(self.nugget)).sqrt().unsqueeze(-1) * e

    def complete_row(self, x_row, mask_row, mean_row, scale_row):
        """Matheron's rule (class docstring) for one row: ``(S, |h|)`` draws and means."""
        n_draws = mean_row.shape[0]
        s = scale_row
        if s is None:
            s = torch.ones(n_draws, dtype=torch.float64, device=mean_row.device)
        geo = self.eigen_geometry(mask_row)
        mu, _ = self.conditional(x_row, mean_row, mask_row, s)
        delta = self._joint_draws(n_draws, s, mean_row.device)
        o, h = geo.observed.to(mean_row.device), geo.hidden.to(mean_row.device)
        u = delta[:, o] @ geo.basis.to(mean_row.device)
        var = self._variances(geo, s, u)
        return mu + delta[:, h] - (u / var) @ geo.cross.to(mean_row.device).T, mu

    def log_lik_row(self, x_row, mask_row, mean_row, scale_row) -> torch.Tensor:
        """log N(x_h; μ_h, S_hh + sεI − A diag(1/(λ + sε)) Aᵀ) at each draw, the
        covariance factorized once per draw."""
        n_draws, device = mean_row.shape[0], mean_row.device
        s = scale_row
        if s is None:
            s = torch.ones(n_draws, dtype=torch.float64, device=device)
        geo = self.eigen_geometry(mask_row)
        mu, _ = self.conditional(x_row, mean_row, mask_row, s)
        h = geo.hidden
        s_hh = self.signal[h][:, h].to(device)
        target = x_row[~mask_row].double()
        cross, lam = geo.cross.to(device), geo.lam.to(device)
        eye = torch.eye(s_hh.shape[0], dtype=s_hh.dtype, device=device)
        lf = torch.empty(n_draws, dtype=torch.float64, device=device)
        for k in range(n_draws):
            nug = s[k] * float(self.nugget)
            cov = s_hh - (cross / (lam + nug)) @ cross.T
            cov = 0.5 * (cov + cov.T) + nug * eye
            lf[k] = torch.distributions.MultivariateNormal(mu[k], cov).log_prob(target)
        return lf


class WithDiscrepancy:
    """A model family whose observation site is a :class:`GaussianDiscrepancy`: what a
    conditioner reads (``model``, the guide's posterior methods, the networks' state),
    with :meth:`model` scoring the observed entries by the discrepancy instead of the
    family's likelihood. The latent sites and their prior are the family's own."""

    def __init__(self, module, noise: GaussianDiscrepancy) -> None:
        self.module = module
        self.noise = noise

    def model(self, batch: Batch, beta: float = 1.0) -> None:
        """The family's model with its observation site hidden, and the discrepancy's
        sites scoring the observed entries of ``batch`` at the decoder's mean."""
        module = self.module
        blocked = poutine.block(module.model, hide=[sites.OBS])
        trace = poutine.trace(blocked).get_trace(batch, beta)
        draws = {
            name: node["value"]
            for name, node in trace.nodes.items()
            if node["type"] == "sample" and not site_is_subsample(node)
        }
        mean = module.decode_rows(module.code_of(draws), batch).mean
        self.noise.observe(batch, mean)

    # the rest is the family's own
    def guide_input(self, batch: Batch):
        return self.module.guide_input(batch)

    def posterior_moments(self, *args: Any, **kwargs: Any):
        return self.module.posterior_moments(*args, **kwargs)

    def posterior_sample(self, *args: Any, **kwargs: Any):
        return self.module.posterior_sample(*args, **kwargs)

    def parameters(self):
        return self.module.parameters()

    @property
    def training(self) -> bool:
        return self.module.training

    def train(self, mode: bool = True):
        self.module.train(mode)
        return self

    def eval(self):
        self.module.eval()
        return self


def _residual_rows(
    rows, name: str, least: int = 2, entries: tuple[int, str] | None = None
) -> torch.Tensor:
    """``rows`` as float64 ``(n, D)``, checked: at least ``least`` rows, all finite, and
    with ``entries = (D, what)`` D entries per row (``what`` names what sets D)."""
    r = torch.as_tensor(rows).detach().double().cpu()
    if r.ndim < 2 or r.shape[0] < least:
        raise DataError(f"the {name} need at least {least} rows; got shape {tuple(r.shape)}")
    if not bool(torch.isfinite(r).all()):
        raise DataError(f"the {name} have non-finite entries")
    r = r.reshape(r.shape[0], -1)
    if entries is not None and r.shape[1] != entries[0]:
        raise DataError(f"{name} have {r.shape[1]} entries per row but {entries[1]} {entries[0]}")
    return r


def _covariance(rows: torch.Tensor) -> torch.Tensor:
    """The sample covariance of ``rows`` ``(n, D)``, ``(D, D)``; one-line error if zero."""
    s = torch.cov(rows.T).reshape(rows.shape[1], rows.shape[1])
    if not float(torch.diagonal(s).mean()) > 0:
        raise DataError("the residuals are all equal: their covariance is zero")
    return s


def select_nugget(
    covariance: torch.Tensor, validation: torch.Tensor, grid=NUGGET_GRID
) -> tuple[float, float]:
    """The relative nugget of ``grid`` that maximizes the mean log N(r_v; 0, S + ε I) of
    the validation rows ``(m, D)`` (module docstring), and that mean (nats per row).
    ε = relative nugget × mean(diag S)."""
    lam, u = torch.linalg.eigh(covariance.double())
    lam = lam.clamp_min(0.0)
    proj = (validation.double() @ u).square().mean(0)  # E_v[(u_i^T r_v)^2]
    level = float(torch.diagonal(covariance).double().mean())
    d = lam.shape[0]
    best = (None, -math.inf)
    for rel in grid:
        var = lam + float(rel) * level
        ll = float(-0.5 * (proj / var).sum() - 0.5 * torch.log(var).sum() - 0.5 * d * _LOG_2PI)
        if ll > best[1]:
            best = (float(rel), ll)
    return best
