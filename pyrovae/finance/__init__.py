"""Option pricing for surfaces of implied volatility: the Heston model and Black–Scholes.

* :mod:`~pyrovae.finance.heston`: Heston European prices from the little-trap
  characteristic function (Albrecher et al. 2007) and Lewis's single integral, in
  torch, vectorised over parameter sets x maturities x strikes and differentiable.
* :mod:`~pyrovae.finance.blackscholes`: Black–Scholes prices and a vectorised,
  bracketed implied-volatility inversion that returns NaN (and a mask) where no
  implied volatility exists.
* :mod:`~pyrovae.finance.arbitrage`: calendar and butterfly (Durrleman) diagnostics of
  any surface on a maturity x log-moneyness grid.

A component-level library: plain torch, no Pyro, and nothing from the models,
training or estimators (the import contract in ``pyproject.toml``).
"""

from __future__ import annotations

from .arbitrage import (
    ArbitrageReport,
    arbitrage_report,
    butterfly_violations,
    calendar_violations,
    durrleman_g,
    total_variance,
)
from .blackscholes import (
    black_scholes_price,
    implied_total_vol,
    implied_vol,
    normalized_otm_price,
    total_vol_uncertainty,
)
from .heston import (
    HestonParams,
    expected_total_variance,
    heston_implied_vol,
    heston_log_cf,
    heston_otm_price,
    heston_price,
)

__all__ = [
    "ArbitrageReport",
    "HestonParams",
    "arbitrage_report",
    "black_scholes_price",
    "butterfly_violations",
    "calendar_violations",
    "durrleman_g",
    "expected_total_variance",
    "heston_implied_vol",
    "heston_log_cf",
    "heston_otm_price",
    "heston_price",
    "implied_total_vol",
    "implied_vol",
    "normalized_otm_price",
    "total_variance",
    "total_vol_uncertainty",
]
