r"""Black–Scholes prices and a vectorised, safeguarded implied-volatility inversion.

Everything is computed in forward-normalised terms. With forward
:math:`F = S e^{(r - q)\tau}`, log-moneyness :math:`k = \ln(K / F)` and total
volatility :math:`s = \sigma\sqrt{\tau}`, the undiscounted price of the
*out-of-the-money* option (the call for :math:`k \ge 0`, the put for :math:`k < 0`)
divided by :math:`F` is

.. math::

    o(k, s) = e^{\min(k, 0)} \, c(|k|, s), \qquad
    c(m, s) = \Phi(d_1) - e^{m} \Phi(d_2), \quad
    d_{1,2} = -\frac{m}{s} \pm \frac{s}{2},

(put–call symmetry: the normalised put at :math:`k` is :math:`e^{k}` times the
normalised call at :math:`-k`). :math:`c` is evaluated in log space,
:math:`\ln c = \ln\Phi(d_1) + \ln(1 - e^{m + \ln\Phi(d_2) - \ln\Phi(d_1)})`, so that
prices far below the forward (down to the smallest positive double) keep their
relative accuracy. The other option follows by put–call parity, the discounted price by
:math:`e^{-r\tau}F`.

Implied volatility. :math:`\ln c(m, s)` is increasing and concave in :math:`s`, so a
Newton iteration on :math:`\ln c(m, s) - \ln c^{*}` converges from any starting point
once an iterate lies left of the root (the tangent of a concave function lies above
it); near the root Halley's correction (the second derivative is a by-product) makes
the convergence cubic. The iteration keeps a bracket :math:`[s_{lo}, s_{hi}]` and
bisects (in :math:`\log s`) whenever a step leaves it; it starts from the larger of the
at-the-money inversion and the small-price asymptote :math:`s \approx m/\sqrt{-2\ln c}`.
Where no volatility reproduces the price — at or below the intrinsic value, at or above
the forward-discounted upper bound :math:`e^{-q\tau}S` (call) or :math:`e^{-r\tau}K`
(put) — or where the time value is not above the stated price accuracy, the result is
NaN and the returned mask is false: prices are never clipped
into the bounds. The solution is returned with the implicit-function gradient (one
Newton step taken with autograd at the converged point), so implied volatilities are
differentiable with respect to the prices and the contract terms.

References
----------
F. Black and M. Scholes (1973), The pricing of options and corporate liabilities,
Journal of Political Economy 81(3), 637–654.
P. Jäckel (2015), Let's be rational, Wilmott 2015(75), 40–53 (normalised prices,
:math:`s = \sqrt{2|k|}` as the point of maximal normalised vega).
"""

from __future__ import annotations

import math

import torch

from ..errors import ParameterError

__all__ = [
    "black_scholes_price",
    "implied_vol",
    "implied_total_vol",
    "log_normalized_call",
    "normalized_otm_price",
    "total_vol_uncertainty",
]

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_LN2 = math.log(2.0)
#: Largest total volatility :math:`\sigma\sqrt{\tau}` the inversion looks for; a
#: normalised price that needs more is within one rounding of its upper bound.
MAX_TOTAL_VOL = 100.0


def _log1mexp(z: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(z))`` for ``z <= 0``, accurate near 0 and far below it."""
    near = z > -_LN2
    return torch.where(
        near,
        torch.log(-torch.expm1(torch.where(near, z, -1.0))),
        torch.log1p(-torch.exp(torch.where(near, -1.0, z))),
    )


def log_normalized_call(m: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    r""":math:`\ln c(m, s)`: the log of the undiscounted call price per unit forward at
    log-moneyness ``m >= 0`` and total volatility ``s > 0`` (see the module docstring).

    Accurate in relative terms down to prices near the smallest positive double.
    """
    d1 = -m / s + 0.5 * s
    d2 = d1 - s
    l1 = torch.special.log_ndtr(d1)
    l2 = torch.special.log_ndtr(d2)
    return l1 + _log1mexp(torch.clamp(m + l2 - l1, max=0.0))


def _dlog_c_ds(m: torch.Tensor, s: torch.Tensor, log_c: torch.Tensor) -> torch.Tensor:
    """Derivative of :func:`log_normalized_call` in ``s``: the normalised vega over c."""
    d1 = -m / s + 0.5 * s
    return torch.exp(-0.5 * d1 * d1 - _LOG_SQRT_2PI - log_c)


def normalized_otm_price(k: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    r"""Undiscounted out-of-the-money price per unit forward, :math:`o(k, s)`.

    Parameters
    ----------
    k : Tensor
        Log-moneyness :math:`\ln(K/F)` (the call for ``k >= 0``, the put for ``k < 0``).
    s : Tensor
        Total volatility :math:`\sigma\sqrt{\tau} > 0` (broadcast with ``k``).
    """
    k, s = torch.broadcast_tensors(torch.as_tensor(k), torch.as_tensor(s))
    return torch.exp(log_normalized_call(k.abs(), s) + torch.clamp(k, max=0.0))


def _as64(*xs):
    return [torch.as_tensor(x, dtype=torch.float64) for x in xs]


def _check_positive(name: str, x: torch.Tensor) -> None:
    if bool((~(x > 0)).any()):
        bad = x[~(x > 0)].flatten()[0].item()
        raise ParameterError(f"{name} must be positive; got {bad:g}")


def _forward_terms(strikes, maturities, spot, r, q):
    strikes, maturities, spot, r, q = _as64(strikes, maturities, spot, r, q)
    _check_positive("maturities", maturities)
    _check_positive("strikes", strikes)
    _check_positive("spot", spot)
    forward = spot * torch.exp((r - q) * maturities)
    k = torch.log(strikes / forward)
    discount = torch.exp(-r * maturities)
    return k, forward, discount, maturities


def black_scholes_price(
    vol, strikes, maturities, spot=1.0, r=0.0, q=0.0, call: bool = True
) -> torch.Tensor:
    r"""Black–Scholes European option prices (float64, broadcast over all inputs).

    Parameters
    ----------
    vol : array-like
        Volatility :math:`\sigma > 0`.
    strikes, maturities : array-like
        Strike :math:`K > 0` and time to maturity :math:`\tau > 0` in years.
    spot, r, q : array-like
        Spot price, continuously compounded interest rate and dividend yield.
    call : bool
        Calls (default) or puts.

    Returns
    -------
    Tensor
        :math:`e^{-r\tau}[F\Phi(d_1) - K\Phi(d_2)]` for calls, the put by parity; the
        out-of-the-money part is computed in log space (see the module docstring).

    Raises
    ------
    ParameterError
        A non-positive volatility, strike, maturity or spot.
    """
    (vol,) = _as64(vol)
    _check_positive("vol", vol)
    k, forward, discount, tau = _forward_terms(strikes, maturities, spot, r, q)
    otm = normalized_otm_price(k, vol * torch.sqrt(tau))
    return discount * forward * (otm + _intrinsic(k, call))


def _intrinsic(k: torch.Tensor, call: bool) -> torch.Tensor:
    """Undiscounted intrinsic value per unit forward of the in-the-money side:
    ``max(1 - e^k, 0)`` for calls, ``max(e^k - 1, 0)`` for puts."""
    return torch.clamp(-torch.expm1(k), min=0.0) if call else torch.clamp(torch.expm1(k), min=0.0)


def _initial_guess(m: torch.Tensor, log_c: torch.Tensor) -> torch.Tensor:
    r"""A starting total volatility: the larger of the at-the-money inversion of the same
    normalised price (a lower bound of the root, since c falls with m) and the
    small-price asymptote :math:`\ln c \approx -m^2/(2s^2)`."""
    c = torch.exp(log_c)
    atm = 2.0 * torch.special.ndtri(torch.clamp(0.5 * (1.0 + c), max=1.0 - 1e-16))
    small = m / torch.sqrt(torch.clamp(-2.0 * log_c, min=1e-300))
    return torch.clamp(torch.maximum(atm, small), min=1e-8, max=MAX_TOTAL_VOL)


def _solve(m: torch.Tensor, target: torch.Tensor, max_iter: int, rtol: float):
    """Bracketed Newton–Halley iteration on ``log c(m, s) = target`` (no gradient);
    returns s and whether each entry converged. Only the entries not yet converged are
    iterated; a step that leaves the bracket is replaced by a bisection."""
    shape = m.shape
    m, target = m.reshape(-1), target.reshape(-1)
    s = _initial_guess(m, target)
    converged = torch.zeros_like(m, dtype=torch.bool)
    active = torch.arange(m.numel())
    lo = torch.zeros_like(m)
    hi = torch.full_like(m, MAX_TOTAL_VOL)
    for _ in range(max_iter):
        if active.numel() == 0:
            break
        ma, sa, ta, la, ha = m[active], s[active], target[active], lo[active], hi[active]
        lc = log_normalized_call(ma, sa)
        f = lc - ta
        la = torch.where(f <= 0, torch.maximum(la, sa), la)
        ha = torch.where(f >= 0, torch.minimum(ha, sa), ha)
        d1 = -ma / sa + 0.5 * sa
        f1 = _dlog_c_ds(ma, sa, lc)
        f2 = f1 * (-d1 * (ma / (sa * sa) + 0.5) - f1)  # second derivative of log c
        # Halley's correction where it is small (near the root), Newton's step elsewhere
        # (from the left of the root Newton never overshoots: log c is concave)
        halley = (f * f2).abs() <= f1 * f1
        denom = torch.where(halley, f1 - 0.5 * f * f2 / f1, f1)
        new = sa - f / denom
        # a step below rtol leaves an error of order rtol^2 (Newton) or rtol^3 (Halley)
        conv = (((new - sa).abs() <= rtol * sa) & torch.isfinite(new)) | (f == 0)
        bad = ~conv & (~((new >= la) & (new <= ha)) | ~torch.isfinite(new))
        mid = torch.where(la > 0, torch.sqrt(la * ha), 0.5 * ha)  # bisection in log s
        new = torch.where(bad, mid, new)
        conv = conv | (ha - la <= 4.0 * torch.finfo(m.dtype).eps * ha)
        s[active], lo[active], hi[active] = new, la, ha
        converged[active] = conv
        active = active[~conv]
    return s.reshape(shape), converged.reshape(shape)


def implied_total_vol(
    otm_price,
    k,
    price_tol=None,
    max_iter: int = 100,
    rtol: float = 1e-10,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Total implied volatility :math:`s = \sigma\sqrt{\tau}` from normalised
    out-of-the-money prices.

    Parameters
    ----------
    otm_price : Tensor
        Undiscounted out-of-the-money price per unit forward (:math:`o(k, s)`).
    k : Tensor
        Log-moneyness :math:`\ln(K/F)` (broadcast with ``otm_price``).
    price_tol : float or Tensor, optional
        Absolute accuracy of ``otm_price``: entries not above it have no resolvable time
        value and are NaN (default: only prices below the smallest normal double, whose
        few significant bits determine no volatility).
    max_iter : int
        Newton iterations at most (the bracketed iteration converges in fewer than 15
        for any representable price; entries that do not converge are NaN).
    rtol : float
        An entry has converged after a step smaller than ``rtol * s`` (its error is
        then of order ``rtol**2`` or below: at rounding level for the default).

    Returns
    -------
    s : Tensor
        Total implied volatility, NaN where none exists.
    ok : Tensor
        Boolean mask, true where ``s`` is a number.
    """
    otm, k = torch.broadcast_tensors(*_as64(otm_price, k))
    m = k.abs()
    c = otm / torch.exp(torch.clamp(k, max=0.0))  # the call at |k|
    # a subnormal price has too few significant bits to determine a volatility
    tiny = torch.finfo(torch.float64).tiny
    floor = tiny if price_tol is None else torch.clamp(torch.as_tensor(price_tol), min=tiny)
    ok = (otm > floor) & (c < 1.0) & torch.isfinite(otm) & torch.isfinite(k)
    safe_c = torch.where(ok, c, torch.full_like(c, 0.5))
    target = torch.log(safe_c)
    safe_m = torch.where(ok, m, torch.zeros_like(m))
    with torch.no_grad():
        s, converged = _solve(safe_m.detach(), target.detach(), max_iter, rtol)
        ok = ok & converged & (s < MAX_TOTAL_VOL)
    if safe_c.requires_grad or safe_m.requires_grad:
        # one Newton step with autograd at the root: the implicit-function gradient
        lc = log_normalized_call(safe_m, s)
        s = s - (lc - target) / _dlog_c_ds(safe_m, s, lc).detach()
    nan = torch.full_like(s, math.nan)
    return torch.where(ok, s, nan), ok


def total_vol_uncertainty(k, s, price_tol) -> torch.Tensor:
    r"""How far a price error of ``price_tol`` (per unit forward, undiscounted) moves the
    total implied volatility ``s`` at log-moneyness ``k``: ``price_tol`` over the
    normalised vega :math:`e^{\min(k, 0)}\varphi(d_1(|k|, s))` (first order)."""
    k, s = _as64(k, s)
    m = k.abs()
    d1 = -m / s + 0.5 * s
    log_vega = -0.5 * d1 * d1 - _LOG_SQRT_2PI + torch.clamp(k, max=0.0)
    return torch.as_tensor(price_tol, dtype=torch.float64) * torch.exp(-log_vega)


def implied_vol(
    price,
    strikes,
    maturities,
    spot=1.0,
    r=0.0,
    q=0.0,
    call: bool = True,
    price_tol=None,
    iv_tol: float | None = None,
    max_iter: int = 100,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Black–Scholes implied volatility of European option prices, vectorised.

    Parameters
    ----------
    price : array-like
        Option prices (broadcast with the other inputs).
    strikes, maturities, spot, r, q : array-like
        As in :func:`black_scholes_price`.
    call : bool
        Whether ``price`` are calls (default) or puts.
    price_tol : float or array-like, optional
        Absolute accuracy of the prices. An entry whose time value (its price less its
        intrinsic value, i.e. the out-of-the-money price by put–call parity) is not
        above it is NaN. Default: the rounding of the given price, ``4 eps |price|``
        for in-the-money options, 0 for out-of-the-money ones. The implied volatility
        is then accurate to about ``price_tol`` over the vega.
    iv_tol : float, optional
        Also mark missing the entries whose implied volatility ``price_tol`` leaves
        uncertain by more than ``iv_tol`` (``price_tol / vega > iv_tol``; deep in- or
        out-of-the-money options whose time value is lost in the price's rounding).
    max_iter : int
        Newton iterations at most.

    Returns
    -------
    vol : Tensor
        Implied volatility, NaN where none exists: the price is at or outside the
        no-arbitrage bounds, its time value is not resolvable, or the iteration did not
        converge.
    ok : Tensor
        Boolean mask, true where ``vol`` is a number.

    Raises
    ------
    ParameterError
        A non-positive strike, maturity or spot.
    """
    (price,) = _as64(price)
    k, forward, discount, tau = _forward_terms(strikes, maturities, spot, r, q)
    scale = discount * forward
    otm = price / scale - _intrinsic(k, call)
    itm = (k < 0) if call else (k > 0)
    if price_tol is None:
        tol = torch.where(itm, 4.0 * torch.finfo(torch.float64).eps * price.abs() / scale, 0.0)
    else:
        tol = torch.as_tensor(price_tol, dtype=torch.float64) / scale
    s, ok = implied_total_vol(otm, k, price_tol=tol, max_iter=max_iter)
    if iv_tol is not None:
        with torch.no_grad():
            ok = ok & (total_vol_uncertainty(k, s, tol) <= iv_tol * torch.sqrt(tau))
        s = torch.where(ok, s, torch.full_like(s, math.nan))
    return s / torch.sqrt(tau), ok
