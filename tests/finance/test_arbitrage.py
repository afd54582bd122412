"""Arbitrage diagnostics: no violations on Black–Scholes and Heston surfaces, Durrleman's
g against its closed form, and detection of constructed calendar and butterfly
violations with exact counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pyrovae.errors import ParameterError
from pyrovae.finance import (
    HestonParams,
    arbitrage_report,
    butterfly_violations,
    calendar_violations,
    durrleman_g,
    heston_implied_vol,
    total_variance,
)

F64 = torch.float64
TAU = torch.tensor([6, 26, 78, 182, 364], dtype=F64) / 365.0
#: The notes' cubic grid (spacings down to 1e-8 at the money) on a smaller scale.
K_CUBIC = torch.unique(
    torch.cat(
        [
            torch.linspace(-(0.4 ** (1 / 3)), 0.6 ** (1 / 3), 40, dtype=F64) ** 3,
            torch.zeros(1, dtype=F64),
        ]
    )
)


def test_black_scholes_surfaces_have_no_violations():
    """Flat smiles: w = sigma^2 tau, so g = 1 exactly and w increases with tau."""
    vols = torch.tensor([0.05, 0.2, 0.9], dtype=F64)[:, None, None]
    w = (vols**2 * TAU[:, None]).expand(3, TAU.numel(), K_CUBIC.numel())
    report = arbitrage_report(w, K_CUBIC)
    assert report.calendar_rate == 0.0 and report.butterfly_rate == 0.0
    assert int(report.calendar_checked.sum()) == 3 * (TAU.numel() - 1) * K_CUBIC.numel()
    g = durrleman_g(w, K_CUBIC)
    assert torch.allclose(g[~torch.isnan(g)], torch.ones(1, dtype=F64))


def test_heston_surfaces_have_no_violations():
    p = HestonParams(
        0.05,
        torch.tensor([0.1, 0.9, 0.5], dtype=F64),
        torch.tensor([0.0025, 0.0625, 0.02], dtype=F64),
        torch.tensor([-0.9, -0.1, -0.5], dtype=F64),
        torch.tensor([0.5, 0.1, 0.3], dtype=F64),
    )
    iv, ok = heston_implied_vol(p, K_CUBIC, TAU, iv_tol=1e-6)
    assert bool((~ok).any())  # missing cells are skipped, not counted
    report = arbitrage_report(total_variance(iv, TAU), K_CUBIC)
    assert report.as_dict()["calendar_violations"] == 0
    assert report.as_dict()["butterfly_violations"] == 0
    assert int(report.butterfly_checked.sum()) > 0.8 * int(ok.sum())


def test_durrleman_g_matches_the_closed_form_for_a_quadratic_smile():
    """Three-point differences are exact for quadratics, so on a uniform grid g equals
    (1 - k w'/2w)^2 - w'^2/4 (1/w + 1/4) + w''/2 with w = a + b k^2 to rounding."""
    k = torch.linspace(-0.15, 0.15, 61, dtype=F64)  # w = a + b k^2 > 0 there
    a, b = 0.04, -1.5
    w = (a + b * k**2)[None, :]
    g = durrleman_g(w, k, min_spacing=0.0)[0]
    w1, w2 = 2 * b * k, 2 * b
    exact = (1 - k * w1 / (2 * w[0])) ** 2 - 0.25 * w1**2 * (1 / w[0] + 0.25) + 0.5 * w2
    inner = slice(1, -1)
    np.testing.assert_allclose(g[inner].numpy(), exact[inner].numpy(), atol=1e-10)
    assert torch.isnan(g[0]) and torch.isnan(g[-1])


def test_a_constructed_butterfly_violation_is_detected_where_g_is_negative():
    k = torch.linspace(-0.15, 0.15, 61, dtype=F64)  # w = a + b k^2 > 0 there
    a, b = 0.04, -1.5  # w'' = -3: g(0) = 1 - 1.5 < 0
    w = torch.stack([0.04 + 0.0 * k, a + b * k**2])  # one flat smile, one bad one
    bad, checked = butterfly_violations(w, k, min_spacing=0.0)
    w1 = 2 * b * k
    exact = (1 - k * w1 / (2 * w[1])) ** 2 - 0.25 * w1**2 * (1 / w[1] + 0.25) + b
    assert not bool(bad[0].any())
    assert bad[1, 1:-1].tolist() == (exact[1:-1] < 0).tolist()
    assert int(checked.sum()) == 2 * 59 and int(bad.sum()) == int((exact[1:-1] < 0).sum()) > 0


def test_a_constructed_calendar_violation_is_counted_once_per_cell():
    w = (0.04 * TAU[:, None]).expand(TAU.numel(), 5).clone()
    w[2, 1] = w[1, 1] - 1e-6  # falls below the previous maturity at one strike
    w[3, 4] = float("nan")  # missing: compared with the last maturity that has a value
    w[4, 4] = w[2, 4] - 1e-6
    bad, checked = calendar_violations(w)
    assert bad.nonzero().tolist() == [[2, 1], [4, 4]]
    assert int(checked.sum()) == (TAU.numel() - 1) * 5 - 1
    report = arbitrage_report(w, torch.linspace(-0.2, 0.2, 5, dtype=F64))
    assert report.calendar_rate == pytest.approx(2 / ((TAU.numel() - 1) * 5 - 1))
    assert report.surfaces_with_violations == 1


def test_tolerances_forgive_violations_up_to_their_size():
    w = (0.04 * TAU[:, None]).expand(TAU.numel(), 3).clone()
    w[2, 1] = w[1, 1] - 1e-6
    assert int(calendar_violations(w, tol=2e-6)[0].sum()) == 0
    assert int(calendar_violations(w, tol=5e-7)[0].sum()) == 1


def test_min_spacing_makes_the_check_robust_to_float32_rounding():
    """A float32-rounded Heston surface on the cubic grid: adjacent-point stencils see the
    rounding (spacings of 1e-8 at the money), stencils 1e-3 wide do not."""
    p = HestonParams(0.05, 0.5, 0.0225, -0.5, 0.3)
    k = torch.unique(
        torch.cat(
            [
                torch.linspace(-(0.4 ** (1 / 3)), 0.6 ** (1 / 3), 100, dtype=F64) ** 3,
                torch.zeros(1, dtype=F64),
            ]
        )
    )
    iv, _ = heston_implied_vol(p, k, TAU[-2:])
    w32 = total_variance(iv, TAU[-2:]).to(torch.float32).to(F64)
    assert int(butterfly_violations(w32, k, min_spacing=0.0)[0].sum()) > 0
    assert int(butterfly_violations(w32, k)[0].sum()) == 0


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: durrleman_g(torch.ones(5), torch.arange(5.0)), "a surface needs shape"),
        (lambda: durrleman_g(torch.ones(2, 5), torch.arange(4.0)), "log-moneyness must be 1-D"),
        (lambda: durrleman_g(torch.ones(2, 3), torch.tensor([0.0, 0.0, 1.0])), "log-moneyness"),
        (lambda: total_variance(torch.ones(2, 3), torch.tensor([1.0, 0.0])), "maturities must"),
        (lambda: durrleman_g(torch.ones(2, 3), torch.arange(3.0), -1.0), "min_spacing must"),
    ],
)
def test_bad_grids_get_one_line_errors(call, message):
    with pytest.raises(ParameterError) as info:
        call()
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_report_as_dict_is_plain_numbers():
    w = (0.04 * TAU[:, None]).expand(2, TAU.numel(), 4)
    d = arbitrage_report(w, torch.linspace(-0.1, 0.1, 4, dtype=F64)).as_dict()
    assert d["surfaces"] == 2 and d["calendar_rate"] == 0.0
    assert all(isinstance(v, (int, float)) and not math.isnan(v) for v in d.values())
