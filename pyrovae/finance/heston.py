r"""European option prices and implied volatilities under the Heston model, in torch.

The model (risk-neutral, continuous dividend yield :math:`q`):

.. math::

    dS_t = (r - q) S_t\,dt + \sqrt{v_t} S_t\,dW^1_t, \qquad
    dv_t = \kappa(\eta - v_t)\,dt + \sigma\sqrt{v_t}\,dW^2_t, \qquad
    d\langle W^1, W^2\rangle_t = \rho\,dt,

with initial variance :math:`v_0`, mean-reversion speed :math:`\kappa`, long-run
variance :math:`\eta` and volatility of variance :math:`\sigma`.

Characteristic function. For :math:`X = \ln(S_\tau / F)` (:math:`F` the forward),
:math:`\varphi(u) = E[e^{iuX}] = \exp(C(u) + D(u) v_0)` with, writing
:math:`\xi = iu`, :math:`a = \xi - \xi^2`, :math:`\beta = \kappa - \rho\sigma\xi`,
:math:`d = \sqrt{\beta^2 + \sigma^2 a}` (principal root, :math:`\Re d \ge 0`) and
:math:`g = (\beta - d)/(\beta + d)`,

.. math::

    D = \frac{\beta - d}{\sigma^2}\,\frac{1 - e^{-d\tau}}{1 - g e^{-d\tau}}, \qquad
    C = \frac{\kappa\eta}{\sigma^2}\Big[(\beta - d)\tau
        - 2\ln\frac{1 - g e^{-d\tau}}{1 - g}\Big].

This is the form of Albrecher, Mayer, Schoutens & Tistaert (2007), "The little Heston
trap": with :math:`e^{-d\tau}` (not :math:`e^{+d\tau}`) the principal branch of the
logarithm is the continuous one, so no branch-cut bookkeeping is needed. It is
evaluated through :math:`(\beta - d)/\sigma^2 = -a/(\beta + d)` and
:math:`\ln(\cdot) = \mathrm{log1p}(g(1 - e^{-d\tau})/(1 - g))`, which stay accurate as
:math:`\sigma \to 0` (no cancellation in :math:`\beta - d`).

Prices. Lewis's (2000) single-integral formula, with a Black–Scholes control variate
(as Andersen & Piterbarg 2010, §9.4.2) at the expected total variance
:math:`w = \eta\tau + (v_0 - \eta)(1 - e^{-\kappa\tau})/\kappa`: the undiscounted
out-of-the-money price per unit forward at log-moneyness :math:`k = \ln(K/F)` is

.. math::

    o(k) = o_{BS}(k, \sqrt{w}) - \frac{e^{k/2}}{\pi}\int_0^\infty
        \Re\big[e^{-iuk}(\varphi(u - \tfrac{i}{2}) - e^{-w(u^2 + 1/4)/2})\big]
        \frac{du}{u^2 + 1/4},

the same correction for calls and puts (their Black–Scholes parts differ by the
forward less the strike). Computing the out-of-the-money option directly keeps small
prices accurate in absolute terms; the control variate makes the Heston price tend to
the Black–Scholes price as :math:`\sigma \to 0`.

Quadrature. The integral is truncated at :math:`U`, the first point of a geometric
probe grid beyond which the integrand's envelope
:math:`(|\varphi(u - i/2)| + e^{-w(u^2+1/4)/2})\,u/(u^2+1/4)` stays below a tenth of
the tolerance (per parameter set), and integrated on :math:`[0, U]` by a composite
Gauss–Legendre rule: 32 nodes per panel, a panel count that grows with :math:`U` times
the oscillation frequency (the largest :math:`|k|`) plus the scale of the characteristic
function (:math:`\sqrt{w}`), and the first panel refined geometrically toward
:math:`u = 0`, where the analytic continuation of the integrand has its singularities
when moments explode (large :math:`\sigma` with :math:`\rho > 0`, long maturities).
Parameter sets of one maturity whose truncation points lie within a ratio of 1.5 share
one rule, so the sum over strikes is a matrix product. The truncation and the node
count are chosen without gradient; prices are differentiable with respect to every
parameter, the spot, the rates and the strikes. ``tol`` is the target absolute error of
the out-of-the-money price per unit forward; ``tests/finance/test_heston.py`` checks it
against a rule with four times as many nodes, and the prices against QuantLib's
``AnalyticHestonEngine``.

References
----------
S. L. Heston (1993), A closed-form solution for options with stochastic volatility
with applications to bond and currency options, Review of Financial Studies 6(2).
H. Albrecher, P. Mayer, W. Schoutens and J. Tistaert (2007), The little Heston trap,
Wilmott Magazine, January 2007, 83–92.
A. L. Lewis (2000), Option Valuation under Stochastic Volatility, Finance Press, ch. 2.
L. Andersen and V. Piterbarg (2010), Interest Rate Modeling, vol. I, Atlantic
Financial Press, §9.4 (Fourier pricing with a control variate).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, fields

import torch

from ..errors import ParameterError
from . import _complex as _c
from .blackscholes import implied_total_vol, normalized_otm_price, total_vol_uncertainty
from .quadrature import composite_gauss_legendre

__all__ = [
    "HestonParams",
    "heston_implied_vol",
    "heston_log_cf",
    "heston_otm_price",
    "heston_price",
]

logger = logging.getLogger(__name__)

#: Default target absolute error of out-of-the-money prices per unit forward.
DEFAULT_TOL = 1e-13
#: Gauss–Legendre nodes per panel of the composite rule.
NODES_PER_PANEL = 32
#: Radians of oscillation (log-moneyness times panel width) one panel resolves.
PANEL_RADIANS = 20.0
#: Geometric refinements of the first panel toward u = 0, where the integrand's
#: analytic continuation has its singularities (moment explosion) closest.
GRADED_PANELS = 8
#: Parameter sets whose truncation points lie within this ratio share one rule.
GROUP_RATIO = 1.5
#: Nodes per maturity at most; beyond it the rule is capped with a warning.
MAX_NODES = 16384
# Geometric probe grid of the truncation search.
_PROBES = torch.logspace(0, 5, 86, dtype=torch.float64)


@dataclass(frozen=True)
class HestonParams:
    """Heston parameters, each a float64 tensor of one batch shape (broadcast).

    Attributes
    ----------
    v0 : Tensor
        Initial variance (>= 0).
    kappa : Tensor
        Mean-reversion speed (>= 0).
    eta : Tensor
        Long-run variance (>= 0; ``v0`` and ``eta`` not both 0).
    rho : Tensor
        Correlation of the price and variance shocks, in (-1, 1).
    sigma : Tensor
        Volatility of variance (> 0).
    """

    v0: torch.Tensor
    kappa: torch.Tensor
    eta: torch.Tensor
    rho: torch.Tensor
    sigma: torch.Tensor

    NAMES = ("v0", "kappa", "eta", "rho", "sigma")

    def __post_init__(self) -> None:
        values = [torch.as_tensor(getattr(self, f.name), dtype=torch.float64) for f in fields(self)]
        try:
            values = torch.broadcast_tensors(*values)
        except RuntimeError:
            shapes = ", ".join(
                f"{n} {tuple(v.shape)}" for n, v in zip(self.NAMES, values, strict=True)
            )
            raise ParameterError(f"Heston parameters do not broadcast: {shapes}") from None
        for f, v in zip(fields(self), values, strict=True):
            object.__setattr__(self, f.name, v)
        self.validate()

    @classmethod
    def from_tensor(cls, params) -> HestonParams:
        """From a ``(..., 5)`` tensor with columns ``v0, kappa, eta, rho, sigma``."""
        t = torch.as_tensor(params, dtype=torch.float64)
        if t.dim() == 0 or t.shape[-1] != 5:
            raise ParameterError(
                f"Heston parameters need a last dimension of 5 (v0, kappa, eta, rho, sigma); "
                f"got shape {tuple(t.shape)}"
            )
        return cls(*t.unbind(-1))

    def stack(self) -> torch.Tensor:
        """The ``(..., 5)`` tensor of :meth:`from_tensor`."""
        return torch.stack([self.v0, self.kappa, self.eta, self.rho, self.sigma], -1)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.v0.shape)

    def validate(self) -> None:
        """Raise :class:`~pyrovae.errors.ParameterError` naming the first bad value."""
        checks = (
            ("v0", "the initial variance", lambda t: t >= 0, ">= 0"),
            ("kappa", "the mean-reversion speed", lambda t: t >= 0, ">= 0"),
            ("eta", "the long-run variance", lambda t: t >= 0, ">= 0"),
            ("rho", "the correlation", lambda t: t.abs() < 1, "in (-1, 1)"),
            ("sigma", "the volatility of variance", lambda t: t > 0, "> 0"),
        )
        for name, what, ok, domain in checks:
            t = getattr(self, name).detach()
            good = ok(t) & torch.isfinite(t)
            if not bool(good.all()):
                bad = t[~good].flatten()[0].item()
                raise ParameterError(f"Heston {name} ({what}) must be {domain}; got {bad:g}")
        both_zero = (self.v0.detach() == 0) & (self.eta.detach() == 0)
        if bool(both_zero.any()):
            raise ParameterError("Heston v0 and eta cannot both be 0 (no variance at all)")

    def flat(self) -> HestonParams:
        """The same parameters with the batch flattened to one dimension."""
        return HestonParams(*(getattr(self, n).reshape(-1) for n in self.NAMES))


def _as_params(params) -> HestonParams:
    if isinstance(params, HestonParams):
        return params
    if isinstance(params, dict):
        missing = [n for n in HestonParams.NAMES if n not in params]
        if missing:
            raise ParameterError(f"Heston parameters miss {', '.join(missing)}")
        return HestonParams(**{n: params[n] for n in HestonParams.NAMES})
    return HestonParams.from_tensor(params)


def _maturities(maturities) -> torch.Tensor:
    tau = torch.as_tensor(maturities, dtype=torch.float64)
    if tau.dim() > 1:
        raise ParameterError(f"maturities must be a 1-D array; got shape {tuple(tau.shape)}")
    tau = tau.reshape(-1)
    if tau.numel() == 0:
        raise ParameterError("maturities are empty")
    good = (tau > 0) & torch.isfinite(tau)
    if not bool(good.all()):
        raise ParameterError(f"maturities must be positive; got {tau[~good][0].item():g}")
    return tau


def _log_phi(u: torch.Tensor, tau, v0, kappa, eta, rho, sigma) -> torch.Tensor:
    """``log phi(u)`` for complex ``u`` (all arguments broadcast); see the module
    docstring for the formulas."""
    xi = 1j * u
    a = xi - xi * xi
    beta = kappa - rho * sigma * xi
    d = torch.sqrt(beta * beta + sigma * sigma * a)
    bpd = beta + d
    q = a / bpd  # -(beta - d) / sigma^2
    one_m_e = -torch.expm1(-d * tau)
    e = 1.0 - one_m_e
    g = -sigma * sigma * q / bpd
    big_d = -q * one_m_e / (1.0 - g * e)
    y_over_s2 = -(q / bpd) * one_m_e / (1.0 - g)
    y = sigma * sigma * y_over_s2
    small = y.abs() < 1e-8
    y_safe = torch.where(small, torch.ones_like(y), y)
    ratio = torch.where(small, 1.0 - 0.5 * y, torch.log1p(y_safe) / y_safe)
    big_c = kappa * eta * (-q * tau - 2.0 * y_over_s2 * ratio)
    return big_c + big_d * v0


def _log_phi_lewis(u: torch.Tensor, tau, v0, kappa, eta, rho, sigma) -> _c.Cx:
    """``log phi(u - i/2)`` for real ``u``: :func:`_log_phi` in real arithmetic on the
    Lewis contour, where ``a = u^2 + 1/4`` is real (the pricer's hot loop)."""
    a = u * u + 0.25
    beta = _c.Cx(kappa - 0.5 * rho * sigma + 0.0 * u, -rho * sigma * u)
    s2 = sigma * sigma
    d = _c.sqrt(beta * beta + s2 * a)
    inv = 1.0 / (beta + d)
    q = a * inv
    qb = q * inv
    one_m_e = -_c.expm1(-d * tau)
    g = -s2 * qb
    big_d = -q * one_m_e / (1.0 - g + g * one_m_e)
    y_over_s2 = -qb * one_m_e / (1.0 - g)
    y = s2 * y_over_s2
    small = y.abs() < 1e-8
    one = torch.ones_like(y.re)
    y_safe = _c.Cx(torch.where(small, one, y.re), torch.where(small, 0.0 * one, y.im))
    ratio = _c.log1p(y_safe) / y_safe
    ratio = _c.Cx(
        torch.where(small, 1.0 - 0.5 * y.re, ratio.re), torch.where(small, -0.5 * y.im, ratio.im)
    )
    big_c = kappa * eta * (-tau * q - 2.0 * (y_over_s2 * ratio))
    return big_c + big_d * v0


def heston_log_cf(u, tau, params) -> torch.Tensor:
    r"""Log of the characteristic function of :math:`\ln(S_\tau/F)`, the little-trap form.

    Parameters
    ----------
    u : array-like
        Real or complex arguments (broadcast with ``tau`` and the parameters).
    tau : array-like
        Maturities (> 0).
    params : HestonParams, dict or Tensor
        Parameters (a ``(..., 5)`` tensor has columns ``v0, kappa, eta, rho, sigma``).

    Returns
    -------
    Tensor
        complex128 :math:`\ln\varphi(u)`; :math:`\varphi(0) = \varphi(-i) = 1`.
    """
    p = _as_params(params)
    tau = torch.as_tensor(tau, dtype=torch.float64)
    if not bool(((tau > 0) & torch.isfinite(tau)).all()):
        raise ParameterError(f"maturities must be positive; got {tau[~(tau > 0)][0].item():g}")
    u = torch.as_tensor(u).to(torch.complex128)
    return _log_phi(u, tau, p.v0, p.kappa, p.eta, p.rho, p.sigma)


def expected_total_variance(tau, v0, kappa, eta) -> torch.Tensor:
    r""":math:`\int_0^\tau E[v_t]\,dt = \eta\tau + (v_0 - \eta)(1 - e^{-\kappa\tau})/\kappa`
    (:math:`v_0\tau` at :math:`\kappa = 0`)."""
    kt = kappa * tau
    small = kt < 1e-8
    k_safe = torch.where(small, torch.ones_like(kappa), kappa)
    frac = torch.where(small, tau * (1.0 - 0.5 * kt), -torch.expm1(-k_safe * tau) / k_safe)
    return eta * tau + (v0 - eta) * frac


def _truncation(p: HestonParams, tau: float, w: torch.Tensor, tol: float) -> torch.Tensor:
    """Upper end U of the integral for maturity ``tau``, per parameter set ``(P,)``."""
    u = _PROBES
    col = [getattr(p, n)[:, None] for n in HestonParams.NAMES]
    phi = torch.exp(_log_phi_lewis(u, tau, *col).re)
    a = u * u + 0.25
    envelope = (phi + torch.exp(-0.5 * w[:, None] * a)) * u / a
    above = envelope > tol
    # the last probe above the threshold, per parameter set (or none: the first probe)
    last = torch.where(above.any(1), u.numel() - 1 - above.flip(1).int().argmax(1), -1)
    if bool((last == u.numel() - 1).any()):
        logger.warning(
            "Heston integrand still above %.1e at u = %.0e: the quadrature is truncated there",
            tol,
            float(u[-1]),
        )
    return u[torch.clamp(last + 1, max=u.numel() - 1)]


def heston_otm_price(
    params,
    log_moneyness,
    maturities,
    tol: float = DEFAULT_TOL,
) -> torch.Tensor:
    r"""Undiscounted out-of-the-money price per unit forward on a log-moneyness grid.

    Parameters
    ----------
    params : HestonParams, dict or Tensor
        Parameters of batch shape ``B``.
    log_moneyness : array-like
        :math:`k = \ln(K/F)`: shape ``(K,)`` (every maturity), ``(T, K)`` or
        ``(*B, T, K)``.
    maturities : array-like
        ``(T,)`` years to maturity (> 0).
    tol : float
        Target absolute error of the result (see the module docstring).

    Returns
    -------
    Tensor
        ``(*B, T, K)`` float64: the call's price for ``k >= 0``, the put's for ``k < 0``,
        divided by the forward.
    """
    p = _as_params(params)
    batch = p.shape
    p = p.flat()
    tau = _maturities(maturities)
    k = torch.as_tensor(log_moneyness, dtype=torch.float64)
    n_t = tau.numel()
    if k.dim() == 1:
        k = k.expand(n_t, -1)
    if k.dim() == 2:
        k = k.unsqueeze(0)  # shared by the batch
    else:
        k = k.reshape(-1, *k.shape[-2:])
    if k.shape[-2] != n_t or k.shape[0] not in (1, p.v0.numel()):
        raise ParameterError(
            f"log-moneyness of shape {tuple(torch.as_tensor(log_moneyness).shape)} does not "
            f"fit {n_t} maturities and parameter batch {batch}"
        )
    if not bool(torch.isfinite(k).all()):
        raise ParameterError("log-moneyness must be finite")
    col = [getattr(p, n)[:, None] for n in HestonParams.NAMES]
    out = []
    for t in range(n_t):
        out.append(_otm_one_maturity(p, col, float(tau[t]), tau[t], k[:, t], tol))
    return torch.stack(out, -2).reshape(*batch, n_t, k.shape[-1])


def _otm_one_maturity(p, col, tau_f: float, tau, k, tol: float) -> torch.Tensor:
    """OTM prices per unit forward at one maturity: ``(P, K)`` from ``k`` ``(1|P, K)``.

    Parameter sets are grouped by their truncation point (groups of ratio
    :data:`GROUP_RATIO`); each group shares one rule, so most sets are not integrated
    as far as the slowest-decaying one.
    """
    w = expected_total_variance(tau, p.v0, p.kappa, p.eta)
    with torch.no_grad():
        kmax = float(k.detach().abs().max())
        tail_tol = 0.1 * math.pi * tol * math.exp(-0.5 * float(k.detach().max().clamp(min=0)))
        upper = _truncation(p, tau_f, w.detach(), tail_tol)
        group = torch.ceil(torch.log(upper / upper.min()) / math.log(GROUP_RATIO) - 1e-9)
    otm_bs = normalized_otm_price(k, torch.sqrt(w)[:, None])
    corr = torch.zeros_like(otm_bs)
    for g in torch.unique(group):
        idx = (group == g).nonzero().squeeze(1)
        kg = k if k.shape[0] == 1 else k[idx]
        colg = [c[idx] for c in col]
        corr = corr.index_put((idx,), _correction(colg, w[idx], tau_f, tau, kg, upper[idx], kmax))
    return otm_bs - torch.exp(0.5 * k) * corr


def _correction(col, w, tau_f: float, tau, k, upper: torch.Tensor, kmax: float) -> torch.Tensor:
    """The Lewis integral less its Black–Scholes part, ``(P, K)``, for parameter sets
    that share one composite rule on ``[0, max(upper)]``."""
    with torch.no_grad():
        upper = float(upper.max())
        omega = kmax + float(w.detach().max().sqrt()) + 0.1
        panels = max(1, math.ceil(upper * omega / PANEL_RADIANS))
        if panels * NODES_PER_PANEL > MAX_NODES:
            logger.warning(
                "Heston quadrature capped at %d nodes (wanted %d) at maturity %.4g",
                MAX_NODES,
                panels * NODES_PER_PANEL,
                tau_f,
            )
            panels = MAX_NODES // NODES_PER_PANEL
    u, weights = composite_gauss_legendre(upper, panels, NODES_PER_PANEL, GRADED_PANELS)
    a = u * u + 0.25
    phi = _c.exp(_log_phi_lewis(u, tau, *col))
    bs = torch.exp(-0.5 * w[:, None] * a)
    amp = (phi - bs) * (weights / (math.pi * a))  # (P, N)
    if k.shape[0] == 1:
        uk = u[:, None] * k[0][None, :]
        return amp.re @ torch.cos(uk) + amp.im @ torch.sin(uk)
    uk = u[:, None] * k.unsqueeze(-2)
    return torch.einsum("pn,pnk->pk", amp.re, torch.cos(uk)) + torch.einsum(
        "pn,pnk->pk", amp.im, torch.sin(uk)
    )


def _forward_grid(strikes, tau, spot, r, q, batch):
    """Log-moneyness ``(1|P, T, K)``, forward and discount ``(1|P, T, 1)``."""
    strikes = torch.as_tensor(strikes, dtype=torch.float64)
    spot, r, q = (torch.as_tensor(x, dtype=torch.float64) for x in (spot, r, q))
    for name, x in (("strikes", strikes), ("spot", spot)):
        if not bool(((x > 0) & torch.isfinite(x)).all()):
            raise ParameterError(f"{name} must be positive; got {x[~(x > 0)].flatten()[0]:g}")
    n_p = math.prod(batch)

    def per_set(x):  # scalar or batch-shaped -> (1|P, 1, 1)
        if x.dim() == 0:
            return x.reshape(1, 1, 1)
        if tuple(x.shape) != tuple(batch):
            raise ParameterError(
                f"spot, r and q are scalars or of the parameters' batch shape {batch}; "
                f"got {tuple(x.shape)}"
            )
        return x.reshape(n_p, 1, 1)

    spot, r, q = per_set(spot), per_set(r), per_set(q)
    t = tau.reshape(1, -1, 1)
    forward = spot * torch.exp((r - q) * t)
    discount = torch.exp(-r * t)
    if strikes.dim() == 1:
        strikes = strikes.expand(tau.numel(), -1)
    if strikes.dim() == 2:
        strikes = strikes.unsqueeze(0)
    else:
        strikes = strikes.reshape(-1, *strikes.shape[-2:])
    return torch.log(strikes / forward), forward, discount


def heston_price(
    params,
    strikes,
    maturities,
    spot=1.0,
    r=0.0,
    q=0.0,
    call: bool = True,
    tol: float = DEFAULT_TOL,
) -> torch.Tensor:
    r"""Heston European option prices, vectorised over parameter sets, maturities and
    strikes (float64, differentiable).

    Parameters
    ----------
    params : HestonParams, dict or Tensor
        Parameters of batch shape ``B``.
    strikes : array-like
        ``(K,)``, ``(T, K)`` or ``(*B, T, K)`` strikes (> 0).
    maturities : array-like
        ``(T,)`` years (> 0).
    spot, r, q : float or Tensor
        Spot, interest rate and dividend yield: scalars or of batch shape ``B``.
    call : bool
        Calls (default) or puts.
    tol : float
        Target absolute error per unit forward (see the module docstring).

    Returns
    -------
    Tensor
        ``(*B, T, K)`` prices.

    Raises
    ------
    ParameterError
        Parameters outside their domain, non-positive strikes, spot or maturities.
    """
    p = _as_params(params)
    tau = _maturities(maturities)
    k, forward, discount = _forward_grid(strikes, tau, spot, r, q, p.shape)
    otm = heston_otm_price(p.flat(), k, tau, tol=tol)  # (P, T, K)
    itm = torch.clamp(-torch.expm1(k), min=0.0) if call else torch.clamp(torch.expm1(k), min=0.0)
    price = discount * forward * (otm + itm)
    return price.reshape(*p.shape, tau.numel(), k.shape[-1])


def heston_implied_vol(
    params,
    log_moneyness,
    maturities,
    tol: float = DEFAULT_TOL,
    iv_tol: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Black–Scholes implied volatilities of Heston prices on a log-moneyness grid.

    Parameters
    ----------
    params, log_moneyness, maturities, tol
        As in :func:`heston_otm_price` (:math:`k = \ln(K/F)`; the implied volatility
        in forward terms does not depend on the spot or the rates).
    iv_tol : float, optional
        Also mark missing the cells whose implied volatility the price accuracy ``tol``
        does not determine to within ``iv_tol`` (where ``tol / (normalised vega) >
        iv_tol``). Default: only cells without a resolvable time value (price not above
        ``tol``) or outside the no-arbitrage bounds.

    Returns
    -------
    iv : Tensor
        ``(*B, T, K)`` implied volatilities, NaN where missing.
    ok : Tensor
        Boolean mask of the cells that have one.
    """
    tau = _maturities(maturities)
    otm = heston_otm_price(params, log_moneyness, tau, tol=tol)
    k = torch.as_tensor(log_moneyness, dtype=torch.float64)
    if k.dim() == 1:
        k = k.expand(tau.numel(), -1)
    s, ok = implied_total_vol(otm, k, price_tol=tol)
    if iv_tol is not None:
        with torch.no_grad():
            spread = total_vol_uncertainty(k, s, tol)
            ok = ok & (spread <= iv_tol * torch.sqrt(tau)[:, None])
        s = torch.where(ok, s, torch.full_like(s, math.nan))
    return s / torch.sqrt(tau)[:, None], ok
