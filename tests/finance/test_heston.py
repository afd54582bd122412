"""The Heston pricer: QuantLib's prices and implied volatilities, put–call parity, the
Black–Scholes limit, monotonicity and convexity in strike, the characteristic function's
exact values, the stated quadrature tolerance, gradients, and bad parameters."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import pyrovae.finance.heston as heston_module
from pyrovae.errors import ParameterError
from pyrovae.finance import (
    HestonParams,
    black_scholes_price,
    expected_total_variance,
    heston_implied_vol,
    heston_log_cf,
    heston_otm_price,
    heston_price,
    implied_vol,
)

F64 = torch.float64

#: Parameter sets (v0, kappa, eta, rho, sigma): the notes' ranges, extreme correlation
#: both ways, a large vol of vol violating Feller's condition, slow mean reversion.
PARAMS = {
    "notes-mid": (0.05, 0.5, 0.0225, -0.5, 0.3),
    "rho-0.95": (0.04, 1.5, 0.04, -0.95, 0.8),
    "rho+0.95": (0.02, 0.8, 0.09, 0.95, 0.5),
    "feller-violated": (0.09, 3.0, 0.01, -0.3, 1.2),
    "slow-kappa": (0.01, 0.05, 0.2, -0.7, 0.2),
}
#: Maturities in days: one day, the notes' shortest, one month, one year, five years.
DAYS = (1, 6, 30, 365, 1825)
STRIKES = (0.5, 0.8, 0.95, 1.0, 1.05, 1.25, 1.6, 2.2)
SPOT, RATE, DIV = 1.0, 0.02, 0.01


def _ql():
    return pytest.importorskip(
        "QuantLib",
        reason="QuantLib is not installed (a test-only extra: pip install -e '.[test]')",
    )


def _ql_setup(ql, p):
    today = ql.Date(1, 1, 2020)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    rates = ql.YieldTermStructureHandle(ql.FlatForward(today, RATE, dc))
    divs = ql.YieldTermStructureHandle(ql.FlatForward(today, DIV, dc))
    spot = ql.QuoteHandle(ql.SimpleQuote(SPOT))
    v0, kappa, eta, rho, sigma = p
    model = ql.HestonModel(ql.HestonProcess(rates, divs, spot, v0, kappa, eta, sigma, rho))
    # adaptive Gauss-Lobatto to a relative 1e-13: QuantLib's most accurate setting
    engine = ql.AnalyticHestonEngine(model, 1e-13, 1_000_000)
    flat = ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), 0.2, dc))
    bs_process = ql.BlackScholesMertonProcess(spot, divs, rates, flat)
    return today, engine, bs_process


def _ql_option(ql, today, engine, days, strike, call):
    kind = ql.Option.Call if call else ql.Option.Put
    opt = ql.VanillaOption(
        ql.PlainVanillaPayoff(kind, strike), ql.EuropeanExercise(today + int(days))
    )
    opt.setPricingEngine(engine)
    return opt


@pytest.mark.parametrize("name", list(PARAMS))
@pytest.mark.parametrize("call", [True, False], ids=["call", "put"])
def test_prices_match_quantlib(name, call):
    """Within 1e-11 of QuantLib's AnalyticHestonEngine at relative tolerance 1e-13: our
    quadrature's stated 1e-13 per unit forward plus QuantLib's own integration error."""
    ql = _ql()
    today, engine, _ = _ql_setup(ql, PARAMS[name])
    tau = torch.tensor(DAYS, dtype=F64) / 365.0
    ours = heston_price(
        PARAMS[name], torch.tensor(STRIKES, dtype=F64), tau, SPOT, RATE, DIV, call=call
    )
    theirs = torch.tensor(
        [[_ql_option(ql, today, engine, d, k, call).NPV() for k in STRIKES] for d in DAYS],
        dtype=F64,
    )
    assert ours.shape == (len(DAYS), len(STRIKES))
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=0, atol=1e-11)


@pytest.mark.parametrize("name", ["notes-mid", "rho-0.95", "feller-violated"])
def test_implied_vols_match_quantlib(name):
    """Our implied volatilities of Heston prices within 1e-6 of QuantLib's
    impliedVolatility of its own prices wherever QuantLib's inversion succeeds on a price
    above 1e-9 (below that QuantLib returns its lower bound or rounding noise, and our
    mask marks the cell missing)."""
    ql = _ql()
    p = PARAMS[name]
    today, engine, bs_process = _ql_setup(ql, p)
    days = (6, 30, 182, 365)
    k = torch.linspace(-0.4, 0.6, 21, dtype=F64)
    tau = torch.tensor(days, dtype=F64) / 365.0
    forward = SPOT * torch.exp((RATE - DIV) * tau)
    strikes = forward[:, None] * torch.exp(k)[None, :]
    iv, ok = heston_implied_vol(p, k, tau, iv_tol=1e-6)
    compared = 0
    for i, d in enumerate(days):
        for j in range(k.numel()):
            opt = _ql_option(ql, today, engine, d, float(strikes[i, j]), bool(k[j] >= 0))
            price = opt.NPV()
            try:
                theirs = opt.impliedVolatility(price, bs_process, 1e-12, 1000, 1e-7, 4.0)
            except RuntimeError:  # QuantLib's inversion failed: nothing to compare
                continue
            if price > 1e-9:
                assert bool(ok[i, j]), (d, float(k[j]), price)
                assert abs(float(iv[i, j]) - theirs) < 1e-6, (d, float(k[j]))
                compared += 1
    assert compared >= 40


def test_black_scholes_implied_vol_matches_quantlib():
    """implied_vol of Black–Scholes prices against QuantLib's impliedVolatility."""
    ql = _ql()
    today, engine, bs_process = _ql_setup(ql, PARAMS["notes-mid"])
    strikes = torch.tensor(STRIKES, dtype=F64)
    tau = torch.tensor([30.0], dtype=F64) / 365.0
    prices = heston_price(PARAMS["notes-mid"], strikes, tau, SPOT, RATE, DIV)[0]
    ours, ok = implied_vol(prices, strikes, tau, SPOT, RATE, DIV, iv_tol=1e-9)
    for j, strike in enumerate(STRIKES):
        opt = _ql_option(ql, today, engine, 30, strike, True)
        try:
            theirs = opt.impliedVolatility(float(prices[j]), bs_process, 1e-14, 1000, 1e-7, 4.0)
        except RuntimeError:
            continue
        if bool(ok[j]):
            assert abs(float(ours[j]) - theirs) < 1e-9


@pytest.mark.parametrize("name", list(PARAMS))
def test_put_call_parity(name):
    strikes = torch.tensor(STRIKES, dtype=F64)
    tau = torch.tensor(DAYS, dtype=F64) / 365.0
    call = heston_price(PARAMS[name], strikes, tau, SPOT, RATE, DIV, call=True)
    put = heston_price(PARAMS[name], strikes, tau, SPOT, RATE, DIV, call=False)
    parity = SPOT * torch.exp(-DIV * tau)[:, None] - strikes * torch.exp(-RATE * tau)[:, None]
    np.testing.assert_allclose((call - put).numpy(), parity.numpy(), rtol=0, atol=1e-15)


def test_black_scholes_limit():
    """As sigma -> 0 with eta = v0 the variance stays at v0: Heston -> Black–Scholes
    with volatility sqrt(v0). The gap is first order in sigma."""
    strikes = torch.tensor(STRIKES, dtype=F64)
    tau = torch.tensor(DAYS, dtype=F64) / 365.0
    bs = black_scholes_price(0.2, strikes, tau[:, None], SPOT, RATE, DIV)
    gaps = []
    for sigma in (1e-6, 1e-8):
        h = heston_price((0.04, 1.5, 0.04, -0.7, sigma), strikes, tau, SPOT, RATE, DIV)
        gaps.append(float((h - bs).abs().max()))
    assert gaps[1] < 1e-9
    assert gaps[0] / gaps[1] == pytest.approx(100.0, rel=0.05)


@pytest.mark.parametrize("name", list(PARAMS))
def test_calls_decrease_and_are_convex_in_strike(name):
    strikes = torch.linspace(0.5, 2.0, 151, dtype=F64)
    tau = torch.tensor(DAYS, dtype=F64) / 365.0
    c = heston_price(PARAMS[name], strikes, tau, SPOT, RATE, DIV)
    slope = torch.diff(c, dim=-1) / torch.diff(strikes)
    # -e^{-r tau} <= slope <= 0, and slopes increase (convexity), to rounding
    assert bool((slope <= 1e-12).all())
    assert bool((slope >= -torch.exp(-RATE * tau)[:, None] - 1e-12).all())
    assert bool((torch.diff(slope, dim=-1) >= -1e-9).all())
    # strictly decreasing where the time value is resolvable
    assert bool((slope[:, :-1][c[:, 1:-1] > 1e-9] < 0).all())


def test_characteristic_function_exact_values():
    """phi(0) = 1, phi(-i) = 1 (the forward is a martingale), and E[X] =
    -E[int v dt] / 2 from the derivative at 0."""
    tau = torch.tensor([0.02, 0.5, 3.0], dtype=F64)
    for p in PARAMS.values():
        assert torch.allclose(heston_log_cf(0.0, tau, p), torch.zeros(3, dtype=torch.complex128))
        assert torch.allclose(
            heston_log_cf(-1j, tau, p), torch.zeros(3, dtype=torch.complex128), atol=1e-14
        )
        h = 1e-3  # fourth-order central difference: truncation ~h^4, rounding ~1e-14/h

        def diff(x, p=p):
            return heston_log_cf(x, tau, p) - heston_log_cf(-x, tau, p)

        mean = (8.0 * diff(h) - diff(2 * h)) / (12j * h)
        v0, kappa, eta = (torch.tensor(x, dtype=F64) for x in p[:3])
        expected = -0.5 * expected_total_variance(tau, v0, kappa, eta)
        np.testing.assert_allclose(mean.real.numpy(), expected.numpy(), rtol=1e-7)


def test_pricer_matches_the_lewis_integral_of_the_public_characteristic_function():
    """The pricer's real-arithmetic integrand and quadrature against a brute-force
    composite rule on the complex-arithmetic heston_log_cf (4 million nodes)."""
    p = PARAMS["rho-0.95"]
    k = torch.tensor([-0.3, 0.0, 0.2], dtype=F64)
    tau = torch.tensor([0.05], dtype=F64)
    u = (torch.arange(4_000_000, dtype=F64) + 0.5) * (2000.0 / 4_000_000)  # midpoint rule
    phi = torch.exp(heston_log_cf(u - 0.5j, tau, p))
    a = u * u + 0.25
    integral = (torch.exp(-1j * u[:, None] * k) * phi[:, None]).real / a[:, None]
    lewis_call = 1.0 - torch.exp(0.5 * k) * integral.sum(0) * (2000.0 / 4_000_000) / math.pi
    otm = torch.where(k >= 0, lewis_call, lewis_call - (1.0 - torch.exp(k)))
    ours = heston_otm_price(p, k, tau)[0]
    np.testing.assert_allclose(ours.numpy(), otm.numpy(), rtol=0, atol=1e-12)


def test_stated_tolerance_against_a_rule_with_four_times_the_nodes(monkeypatch):
    """On random parameters in wide ranges and the notes' maturities: |error| <= tol."""
    g = np.random.default_rng(0)
    n = 40
    p = HestonParams(
        torch.tensor(g.uniform(0.005, 0.3, n)),
        torch.tensor(g.uniform(0.05, 5.0, n)),
        torch.tensor(g.uniform(0.005, 0.3, n)),
        torch.tensor(g.uniform(-0.98, 0.98, n)),
        torch.tensor(g.uniform(0.05, 1.5, n)),
    )
    k = torch.linspace(-0.5, 0.7, 25, dtype=F64)
    tau = torch.tensor([6, 26, 182, 364, 1000], dtype=F64) / 365.0
    ours = heston_otm_price(p, k, tau, tol=1e-13)
    monkeypatch.setattr(heston_module, "PANEL_RADIANS", heston_module.PANEL_RADIANS / 4)
    monkeypatch.setattr(heston_module, "MAX_NODES", 4 * heston_module.MAX_NODES)
    fine = heston_otm_price(p, k, tau, tol=1e-16)
    assert float((ours - fine).abs().max()) <= 1e-13


def test_batches_broadcast_and_match_one_at_a_time():
    p = HestonParams(
        torch.tensor([[0.04, 0.05, 0.06], [0.02, 0.03, 0.09]], dtype=F64), 1.2, 0.04, -0.6, 0.4
    )
    strikes = torch.tensor([0.9, 1.0, 1.1], dtype=F64)
    tau = torch.tensor([0.1, 0.5], dtype=F64)
    out = heston_price(p, strikes, tau)
    assert out.shape == (2, 3, 2, 3)
    for i in range(2):
        for j in range(3):
            one = heston_price((float(p.v0[i, j]), 1.2, 0.04, -0.6, 0.4), strikes, tau)
            np.testing.assert_allclose(out[i, j].numpy(), one.numpy(), rtol=0, atol=1e-14)


def test_per_surface_spot_and_rates():
    p = HestonParams(torch.tensor([0.04, 0.04], dtype=F64), 1.0, 0.04, -0.5, 0.3)
    strikes = torch.tensor([90.0, 100.0, 110.0], dtype=F64)
    tau = torch.tensor([0.25], dtype=F64)
    spot = torch.tensor([100.0, 105.0], dtype=F64)
    r = torch.tensor([0.0, 0.05], dtype=F64)
    both = heston_price(p, strikes, tau, spot, r, 0.0)
    second = heston_price((0.04, 1.0, 0.04, -0.5, 0.3), strikes, tau, 105.0, 0.05, 0.0)
    np.testing.assert_allclose(both[1].numpy(), second.numpy(), rtol=1e-13)


def test_prices_are_differentiable_in_every_parameter():
    def price(v0, kappa, eta, rho, sigma, spot, r, q):
        return heston_price(
            HestonParams(v0, kappa, eta, rho, sigma),
            torch.tensor([0.9, 1.1], dtype=F64),
            torch.tensor([0.3], dtype=F64),
            spot,
            r,
            q,
        )

    args = tuple(
        torch.tensor(x, dtype=F64, requires_grad=True)
        for x in (0.05, 1.1, 0.03, -0.6, 0.4, 1.0, 0.02, 0.01)
    )
    assert torch.autograd.gradcheck(price, args, eps=1e-6, atol=1e-7, rtol=1e-5)


def test_implied_vol_gradient_is_the_implicit_one():
    """d iv / d v0 of a Heston surface by autograd against central differences."""
    k = torch.tensor([-0.1, 0.0, 0.15], dtype=F64)
    tau = torch.tensor([0.25], dtype=F64)
    v0 = torch.tensor(0.05, dtype=F64, requires_grad=True)
    iv, _ = heston_implied_vol(HestonParams(v0, 1.0, 0.04, -0.5, 0.3), k, tau)
    (grad,) = torch.autograd.grad(iv.sum(), v0)
    h = 1e-6
    up, _ = heston_implied_vol((0.05 + h, 1.0, 0.04, -0.5, 0.3), k, tau)
    down, _ = heston_implied_vol((0.05 - h, 1.0, 0.04, -0.5, 0.3), k, tau)
    assert float(grad) == pytest.approx(float((up - down).sum() / (2 * h)), rel=1e-6)


def test_missing_implied_vols_are_nan_and_masked():
    """Deep out of the money at one day the price is below the pricer's accuracy."""
    k = torch.tensor([-0.4, 0.0, 0.6], dtype=F64)
    iv, ok = heston_implied_vol(PARAMS["notes-mid"], k, torch.tensor([1 / 365, 1.0]), iv_tol=1e-6)
    assert ok.tolist() == [[False, True, False], [True, True, True]]
    assert bool(torch.isnan(iv[~ok]).all()) and bool(torch.isfinite(iv[ok]).all())


BAD = [
    ((-0.01, 1.0, 0.04, -0.5, 0.3), "Heston v0 (the initial variance) must be >= 0; got -0.01"),
    ((0.04, -1.0, 0.04, -0.5, 0.3), "Heston kappa (the mean-reversion speed) must be >= 0"),
    ((0.04, 1.0, -0.04, -0.5, 0.3), "Heston eta (the long-run variance) must be >= 0; got -0.04"),
    ((0.04, 1.0, 0.04, -1.0, 0.3), "Heston rho (the correlation) must be in (-1, 1); got -1"),
    ((0.04, 1.0, 0.04, 1.2, 0.3), "Heston rho (the correlation) must be in (-1, 1); got 1.2"),
    ((0.04, 1.0, 0.04, -0.5, 0.0), "Heston sigma (the volatility of variance) must be > 0; got 0"),
    ((0.04, 1.0, 0.04, -0.5, float("nan")), "Heston sigma (the volatility of variance) must be"),
    ((0.0, 1.0, 0.0, -0.5, 0.3), "Heston v0 and eta cannot both be 0 (no variance at all)"),
]


@pytest.mark.parametrize("params, message", BAD)
def test_bad_parameters_get_one_line_errors(params, message):
    with pytest.raises(ParameterError) as info:
        heston_price(params, [1.0], [0.5])
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda p: heston_price(p, [1.0], [0.0]), "maturities must be positive; got 0"),
        (lambda p: heston_price(p, [1.0], [-0.5]), "maturities must be positive; got -0.5"),
        (lambda p: heston_price(p, [0.0], [0.5]), "strikes must be positive; got 0"),
        (lambda p: heston_price(p, [1.0], [0.5], spot=-1.0), "spot must be positive; got -1"),
        (lambda p: heston_otm_price(p, [0.0], [[0.5]]), "maturities must be a 1-D array"),
        (lambda p: heston_log_cf(0.0, 0.0, p), "maturities must be positive; got 0"),
        (lambda p: HestonParams.from_tensor(torch.ones(3)), "Heston parameters need a last"),
    ],
)
def test_bad_contracts_get_one_line_errors(call, message):
    with pytest.raises(ParameterError) as info:
        call(PARAMS["notes-mid"])
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
