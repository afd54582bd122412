r"""Static-arbitrage diagnostics of implied-volatility surfaces on a grid.

A surface is given as total implied variance :math:`w(\tau, k) = \sigma_{IV}^2\tau` on
a grid of maturities :math:`\tau_1 < \dots < \tau_T` and log-moneyness values
:math:`k = \ln(K/F)` (missing cells are NaN). Two conditions are checked:

* **Calendar**: at fixed :math:`k`, total variance does not decrease with maturity
  (Gatheral & Jacquier 2014, Lemma 2.1; with :math:`k` measured against each
  maturity's forward). A cell is *checked* when it and the previous maturity with a
  value in its column both have values, and *violated* when
  :math:`w(\tau_t, k) < w(\tau_{t'}, k) - \text{tol}` for that previous maturity
  :math:`t'`.
* **Butterfly**: Durrleman's condition (Gatheral & Jacquier 2014, Lemma 2.2): the
  density implied by the smile at one maturity is

  .. math::

     p(k) = \frac{g(k)}{\sqrt{2\pi w}}\exp\Big(-\frac{d_2^2}{2}\Big), \qquad
     g(k) = \Big(1 - \frac{k w'}{2w}\Big)^2 - \frac{w'^2}{4}\Big(\frac{1}{w}
            + \frac14\Big) + \frac{w''}{2},

  so the smile is free of butterfly arbitrage where :math:`g \ge 0`. The derivatives
  are three-point finite differences on the (non-uniform) grid. On grids much denser
  than the surface's accuracy (the cubic grid of the Heston data set has spacings of
  :math:`10^{-8}` at the money) a difference quotient over neighbours that close
  measures rounding, not curvature: each stencil therefore uses the nearest grid
  points at least ``min_spacing`` away on either side (default :math:`10^{-3}`, where
  the truncation error of the stencil is far below the values of :math:`g` that
  matter). A cell is checked when its stencil has values, violated when
  :math:`g < -\text{tol}`.

Rates are violations over checked cells; :class:`ArbitrageReport` has them overall
and per surface.

References
----------
B. Dupire (1994), Pricing with a smile, Risk 7(1) (the implied density).
J. Gatheral and A. Jacquier (2014), Arbitrage-free SVI volatility surfaces,
Quantitative Finance 14(1), 59–71, §2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ParameterError

__all__ = [
    "ArbitrageReport",
    "arbitrage_report",
    "butterfly_violations",
    "calendar_violations",
    "durrleman_g",
    "total_variance",
]

#: Default smallest distance in log-moneyness between a cell and the neighbours of its
#: finite-difference stencil.
MIN_SPACING = 1e-3


def total_variance(iv, maturities) -> torch.Tensor:
    r""":math:`w = \sigma_{IV}^2 \tau` from implied volatilities ``(..., T, K)`` and
    maturities ``(T,)``."""
    iv = torch.as_tensor(iv, dtype=torch.float64)
    tau = torch.as_tensor(maturities, dtype=torch.float64)
    _check_grid(iv, tau=tau)
    return iv * iv * tau[:, None]


def _check_grid(w: torch.Tensor, k=None, tau=None) -> None:
    if w.dim() < 2:
        raise ParameterError(
            f"a surface needs shape (..., maturities, strikes); got {tuple(w.shape)}"
        )
    if k is not None:
        if k.dim() != 1 or k.numel() != w.shape[-1]:
            raise ParameterError(
                f"log-moneyness must be 1-D with {w.shape[-1]} values; got shape {tuple(k.shape)}"
            )
        if k.numel() > 1 and not bool((k[1:] > k[:-1]).all()):
            raise ParameterError("log-moneyness must be strictly increasing")
    if tau is not None:
        if tau.dim() != 1 or tau.numel() != w.shape[-2]:
            raise ParameterError(
                f"maturities must be 1-D with {w.shape[-2]} values; got shape {tuple(tau.shape)}"
            )
        if not bool((tau > 0).all()):
            raise ParameterError(f"maturities must be positive; got {tau[~(tau > 0)][0]:g}")


def calendar_violations(w, tol: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Calendar check of total variance ``w`` ``(..., T, K)`` (maturities increasing).

    Returns
    -------
    violated, checked : Tensor
        Boolean ``(..., T, K)``: cells compared with the previous maturity that has a
        value in their column, and those where total variance fell by more than ``tol``.
    """
    w = torch.as_tensor(w, dtype=torch.float64)
    _check_grid(w)
    prev = torch.full_like(w[..., 0, :], float("nan"))
    violated, checked = [], []
    for t in range(w.shape[-2]):
        cur = w[..., t, :]
        has = ~torch.isnan(cur)
        c = has & ~torch.isnan(prev)
        checked.append(c)
        violated.append(c & (cur < prev - tol))
        prev = torch.where(has, cur, prev)
    return torch.stack(violated, -2), torch.stack(checked, -2)


def _stencil(k: torch.Tensor, min_spacing: float) -> tuple[torch.Tensor, torch.Tensor]:
    """For each grid point, the index of the nearest point at least ``min_spacing``
    to its left and to its right (-1 / K where there is none); the adjacent points when
    ``min_spacing`` is 0."""
    n = k.numel()
    if min_spacing < 0:
        raise ParameterError(f"min_spacing must be >= 0; got {min_spacing:g}")
    if min_spacing == 0:
        i = torch.arange(n)
        return i - 1, i + 1
    left = torch.searchsorted(k, k - min_spacing, right=True) - 1
    right = torch.searchsorted(k, k + min_spacing, right=False)
    return left, right


def durrleman_g(w, log_moneyness, min_spacing: float = MIN_SPACING) -> torch.Tensor:
    r"""Durrleman's :math:`g(k)` of each smile of ``w`` ``(..., T, K)`` (see the module
    docstring); NaN where the stencil leaves the grid or meets a missing cell."""
    w = torch.as_tensor(w, dtype=torch.float64)
    k = torch.as_tensor(log_moneyness, dtype=torch.float64)
    _check_grid(w, k=k)
    n = k.numel()
    left, right = _stencil(k, float(min_spacing))
    inside = (left >= 0) & (right < n)
    li, ri = left.clamp(0, n - 1), right.clamp(0, n - 1)
    h1 = k - k[li]
    h2 = k[ri] - k
    h1 = torch.where(inside, h1, torch.ones_like(h1))
    h2 = torch.where(inside, h2, torch.ones_like(h2))
    wl, wr = w[..., li], w[..., ri]
    d1 = (-h2 / (h1 * (h1 + h2))) * wl + ((h2 - h1) / (h1 * h2)) * w + (h1 / (h2 * (h1 + h2))) * wr
    d2 = 2.0 * (wl / (h1 * (h1 + h2)) - w / (h1 * h2) + wr / (h2 * (h1 + h2)))
    g = (1.0 - k * d1 / (2.0 * w)) ** 2 - 0.25 * d1 * d1 * (1.0 / w + 0.25) + 0.5 * d2
    return torch.where(inside & (w > 0), g, torch.full_like(g, float("nan")))


def butterfly_violations(
    w, log_moneyness, tol: float = 0.0, min_spacing: float = MIN_SPACING
) -> tuple[torch.Tensor, torch.Tensor]:
    """Butterfly (Durrleman) check of ``w`` ``(..., T, K)``.

    Returns
    -------
    violated, checked : Tensor
        Boolean ``(..., T, K)``: cells where :math:`g` could be computed, and those
        where :math:`g < -` ``tol``.
    """
    g = durrleman_g(w, log_moneyness, min_spacing)
    checked = ~torch.isnan(g)
    return checked & (g < -tol), checked


@dataclass
class ArbitrageReport:
    """Violation counts of a batch of surfaces.

    Attributes
    ----------
    calendar_violations, calendar_checked : Tensor
        Per surface (the batch shape), the calendar cells violated and checked.
    butterfly_violations, butterfly_checked : Tensor
        The same for Durrleman's condition.
    """

    calendar_violations: torch.Tensor
    calendar_checked: torch.Tensor
    butterfly_violations: torch.Tensor
    butterfly_checked: torch.Tensor

    @staticmethod
    def _rate(bad: torch.Tensor, checked: torch.Tensor) -> float:
        n = int(checked.sum())
        return float(bad.sum()) / n if n else float("nan")

    @property
    def calendar_rate(self) -> float:
        """Violated over checked calendar cells, over the batch."""
        return self._rate(self.calendar_violations, self.calendar_checked)

    @property
    def butterfly_rate(self) -> float:
        """Violated over checked butterfly cells, over the batch."""
        return self._rate(self.butterfly_violations, self.butterfly_checked)

    @property
    def surfaces_with_violations(self) -> int:
        """Surfaces with at least one violation of either kind."""
        return int(((self.calendar_violations > 0) | (self.butterfly_violations > 0)).sum())

    def as_dict(self) -> dict:
        """Plain numbers for a JSON record."""
        return {
            "surfaces": int(self.calendar_checked.numel()),
            "calendar_violations": int(self.calendar_violations.sum()),
            "calendar_checked": int(self.calendar_checked.sum()),
            "calendar_rate": self.calendar_rate,
            "butterfly_violations": int(self.butterfly_violations.sum()),
            "butterfly_checked": int(self.butterfly_checked.sum()),
            "butterfly_rate": self.butterfly_rate,
            "surfaces_with_violations": self.surfaces_with_violations,
        }


def arbitrage_report(
    w,
    log_moneyness,
    calendar_tol: float = 0.0,
    butterfly_tol: float = 0.0,
    min_spacing: float = MIN_SPACING,
) -> ArbitrageReport:
    """Calendar and butterfly violation counts of surfaces ``w`` ``(..., T, K)`` of total
    variance on the grid ``log_moneyness`` ``(K,)`` (use :func:`total_variance` for
    implied volatilities).

    Parameters
    ----------
    w : array-like
        Total implied variance, maturities increasing along dimension -2, NaN where
        missing.
    log_moneyness : array-like
        Strictly increasing ``(K,)``.
    calendar_tol, butterfly_tol : float
        Slack of each condition (0: the exact condition).
    min_spacing : float
        Nearest stencil neighbours of the butterfly check (see the module docstring).
    """
    w = torch.as_tensor(w, dtype=torch.float64)
    cal_bad, cal_checked = calendar_violations(w, calendar_tol)
    fly_bad, fly_checked = butterfly_violations(w, log_moneyness, butterfly_tol, min_spacing)

    def per_surface(x):
        return x.sum((-2, -1))

    return ArbitrageReport(
        calendar_violations=per_surface(cal_bad),
        calendar_checked=per_surface(cal_checked),
        butterfly_violations=per_surface(fly_bad),
        butterfly_checked=per_surface(fly_checked),
    )
