"""Black–Scholes prices against the closed form and the implied-volatility inversion:
round trips to 1e-8 (deep out of the money included), the error bound of in-the-money
inversions, NaN and mask outside the no-arbitrage bounds, and the implicit gradient."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pyrovae.errors import ParameterError
from pyrovae.finance import (
    black_scholes_price,
    implied_total_vol,
    implied_vol,
    normalized_otm_price,
    total_vol_uncertainty,
)

F64 = torch.float64
SPOT, RATE, DIV = 1.0, 0.02, 0.01


def _closed_form(vol, strike, tau, call):
    """The textbook formula with math.erfc (independent of the module's log-space path)."""
    fwd = SPOT * math.exp((RATE - DIV) * tau)
    s = vol * math.sqrt(tau)
    d1 = (math.log(fwd / strike) + 0.5 * s * s) / s
    d2 = d1 - s

    def cdf(x):
        return 0.5 * math.erfc(-x / math.sqrt(2.0))

    c = math.exp(-RATE * tau) * (fwd * cdf(d1) - strike * cdf(d2))
    return c if call else c - math.exp(-RATE * tau) * (fwd - strike)


@pytest.mark.parametrize("call", [True, False], ids=["call", "put"])
def test_prices_match_the_closed_form(call):
    for vol in (0.05, 0.2, 0.8):
        for tau in (0.01, 0.5, 3.0):
            for strike in (0.7, 0.95, 1.0, 1.1, 1.5):
                ours = float(black_scholes_price(vol, strike, tau, SPOT, RATE, DIV, call=call))
                assert ours == pytest.approx(_closed_form(vol, strike, tau, call), abs=1e-15)


def test_small_out_of_the_money_prices_keep_their_relative_accuracy():
    """Where the textbook difference F N(d1) - K N(d2) cancels, the log-space value
    agrees with the asymptotic expansion of the normalised call."""
    k, s = torch.tensor(3.0, dtype=F64), torch.tensor(0.1, dtype=F64)
    ours = float(normalized_otm_price(k, s))
    # c(m, s) = phi(d1) s / (d1 d2) * (1 - (1/d1^2 + 1/(d1 d2) + 1/d2^2) + ...), d = -m/s +- s/2
    d1, d2 = -30.0 + 0.05, -30.0 - 0.05
    pdf = math.exp(-0.5 * d1 * d1) / math.sqrt(2 * math.pi)
    lead = pdf * 0.1 / (d1 * d2)
    corr = 1 - (1 / d1**2 + 1 / (d1 * d2) + 1 / d2**2)
    assert ours == pytest.approx(lead * corr, rel=1e-4)
    assert ours > 1e-200


VOLS = torch.tensor([0.01, 0.05, 0.2, 1.0, 3.0], dtype=F64)[:, None, None]
TAUS = torch.tensor([1 / 365, 0.1, 1.0, 10.0], dtype=F64)[None, :, None]
STRIKES = torch.exp(torch.linspace(-3.0, 3.0, 61, dtype=F64))[None, None, :]


@pytest.mark.parametrize("call", [True, False], ids=["call", "put"])
def test_out_of_the_money_round_trip_to_1e_8(call):
    """Price -> implied vol -> the same vol, for every out-of-the-money price that is a
    normal double (down to 1e-300: deep out of the money at short maturities)."""
    price = black_scholes_price(VOLS, STRIKES, TAUS, SPOT, RATE, DIV, call=call)
    iv, ok = implied_vol(price, STRIKES, TAUS, SPOT, RATE, DIV, call=call)
    k = torch.log(STRIKES / (SPOT * torch.exp((RATE - DIV) * TAUS)))
    otm = (k >= 0) if call else (k < 0)
    otm = otm.expand_as(price)
    representable = otm & (price > torch.finfo(F64).tiny)
    assert bool(ok[representable].all())
    assert bool((price[representable] < 1e-100).any())  # deep OTM is on the grid
    err = (iv - VOLS).abs()[representable]
    assert float(err.max()) < 1e-8


@pytest.mark.parametrize("call", [True, False], ids=["call", "put"])
def test_in_the_money_inversion_is_within_its_error_bound(call):
    """In the money the time value is the price less the intrinsic value: rounding of the
    price (4 eps |price|) over the vega bounds the error; iv_tol masks what it leaves
    undetermined."""
    price = black_scholes_price(VOLS, STRIKES, TAUS, SPOT, RATE, DIV, call=call)
    iv, ok = implied_vol(price, STRIKES, TAUS, SPOT, RATE, DIV, call=call)
    fwd = SPOT * torch.exp((RATE - DIV) * TAUS)
    k = (torch.log(STRIKES / fwd)).expand_as(price)
    itm = (k < 0) if call else (k > 0)
    scale = torch.exp(-RATE * TAUS) * fwd
    tol = 4 * torch.finfo(F64).eps * price / scale
    bound = total_vol_uncertainty(k, VOLS * torch.sqrt(TAUS), tol) / torch.sqrt(TAUS)
    err = (iv - VOLS).abs()
    sel = itm & ok
    assert bool(sel.any())
    assert bool((err[sel] <= 2 * bound[sel] + 1e-12).all())
    iv8, ok8 = implied_vol(price, STRIKES, TAUS, SPOT, RATE, DIV, call=call, iv_tol=1e-8)
    assert bool((err[itm & ok8] < 2e-8).all()) and bool((ok8 <= ok).all())


@pytest.mark.parametrize(
    "price, call, why",
    [
        (0.6, True, "at the intrinsic value"),
        (0.59, True, "below the intrinsic value"),
        (1.0, True, "above the spot"),
        (0.0, False, "zero"),
        (-0.01, False, "negative"),
        (float("nan"), True, "NaN"),
        (0.5, False, "a put above the strike"),
    ],
)
def test_prices_outside_the_bounds_are_nan(price, call, why):
    strike = 0.4 if call else 0.45
    iv, ok = implied_vol(torch.tensor([price], dtype=F64), strike, 1.0, call=call)
    assert math.isnan(float(iv[0])) and not bool(ok[0]), why


def test_implied_total_vol_on_the_normalised_scale():
    k = torch.tensor([-0.5, 0.0, 0.5], dtype=F64)
    s = torch.tensor([0.3, 0.3, 0.3], dtype=F64)
    out, ok = implied_total_vol(normalized_otm_price(k, s), k)
    assert bool(ok.all())
    np.testing.assert_allclose(out.numpy(), s.numpy(), atol=1e-14)


def test_the_gradient_is_one_over_vega():
    strikes = torch.tensor([0.8, 1.0, 1.3], dtype=F64)
    price = black_scholes_price(0.25, strikes, 0.5, SPOT, RATE, DIV).requires_grad_(True)
    iv, _ = implied_vol(price, strikes, 0.5, SPOT, RATE, DIV)
    (grad,) = torch.autograd.grad(iv.sum(), price)
    fwd = SPOT * math.exp((RATE - DIV) * 0.5)
    d1 = (torch.log(fwd / strikes) + 0.5 * 0.25**2 * 0.5) / (0.25 * math.sqrt(0.5))
    vega = math.exp(-RATE * 0.5) * fwd * torch.exp(-0.5 * d1**2) / math.sqrt(2 * math.pi)
    vega = vega * math.sqrt(0.5)
    np.testing.assert_allclose(grad.numpy(), (1 / vega).numpy(), rtol=1e-10)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: black_scholes_price(0.0, 1.0, 1.0), "vol must be positive; got 0"),
        (lambda: black_scholes_price(0.2, 1.0, 0.0), "maturities must be positive; got 0"),
        (lambda: black_scholes_price(0.2, -1.0, 1.0), "strikes must be positive; got -1"),
        (lambda: implied_vol(0.1, 1.0, -1.0), "maturities must be positive; got -1"),
        (lambda: implied_vol(0.1, 1.0, 1.0, spot=0.0), "spot must be positive; got 0"),
    ],
)
def test_bad_contracts_get_one_line_errors(call, message):
    with pytest.raises(ParameterError) as info:
        call()
    assert str(info.value) == message
