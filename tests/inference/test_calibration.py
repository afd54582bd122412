"""Simulation-based calibration: uniform ranks for the exact posterior, not for a wrong one."""

from __future__ import annotations

import numpy as np
import pytest

from pyrovae.errors import ConfigError
from pyrovae.inference.calibration import conformal_quantile, plot_rank_histograms, sbc


def test_exact_guide_is_calibrated(ppca_class, tmp_path):
    """p-values above 0.001 (chi-square, 10 bins, 1000 simulations); coverage within
    0.05 of the nominal 50 % and 90 %."""
    out = sbc(ppca_class(exact=True), n=1000, draws=99, seed=0)
    assert out["ranks"].shape == (1000, 2) and out["histogram"].sum() == 2000
    assert out["min_p_value"] > 1e-3
    assert abs(out["coverage_50"] - 0.5).max() < 0.05
    assert abs(out["coverage_90"] - 0.9).max() < 0.05
    plot_rank_histograms(out, tmp_path / "sbc.png")
    assert (tmp_path / "sbc.png").stat().st_size > 1000


@pytest.mark.parametrize("widen, sign", [(0.5, -1), (2.0, 1)])
def test_miscalibrated_guide_is_detected(ppca_class, widen, sign):
    """Too narrow: coverage falls; too wide: it rises; uniformity is rejected."""
    out = sbc(ppca_class(exact=False, widen=widen), n=1000, draws=99, seed=1)
    assert out["min_p_value"] < 1e-6
    assert sign * (out["coverage_90"].mean() - 0.9) > 0.04


def test_bins_must_divide_ranks(ppca_class):
    with pytest.raises(ConfigError, match="multiple of bins"):
        sbc(ppca_class(exact=True), draws=100, bins=10)


def test_conformal_quantile_is_the_order_statistic():
    """Unweighted: the ⌈(n + 1)·level⌉-th smallest score; inf when too few."""
    rng = np.random.default_rng(0)
    s = rng.permutation(np.arange(1.0, 21.0))  # scores 1..20
    assert conformal_quantile(s, 0.9) == 19.0  # ⌈21·0.9⌉ = 19
    assert conformal_quantile(s, 0.5) == 11.0  # ⌈10.5⌉ = 11
    assert conformal_quantile(np.arange(19.0, 0.0, -1), 0.9) == 18.0  # ⌈18⌉ = 18: no rounding up
    assert conformal_quantile(s[:5], 0.9) == float("inf")  # 0.9·6 > 5 cases


def test_conformal_coverage_is_exact_for_exchangeable_scores():
    """For continuous exchangeable scores P(s_new ≤ q) = ⌈(n + 1)·level⌉ / (n + 1),
    whatever their distribution: here 19/21 with n = 20 (20,000 replicates, 4 s.e.)."""
    rng = np.random.default_rng(1)
    reps, n = 20_000, 20
    draws = rng.standard_cauchy((reps, n + 1)) ** 2
    hits = [draws[r, -1] <= conformal_quantile(draws[r, :n], 0.9) for r in range(reps)]
    expected = 19 / 21
    se = np.sqrt(expected * (1 - expected) / reps)
    assert abs(np.mean(hits) - expected) < 4 * se


def test_conformal_quantile_weighs_cases_not_cells():
    """Groups: one cell per case is the unweighted rule; cases of unequal size weigh one
    each, so q solves Σ_i F_i(q) ≥ level·(G + 1) (worked by hand)."""
    s = np.array([3.0, 1.0, 2.0, 5.0, 4.0])
    assert conformal_quantile(s, 0.5, groups=[7, 8, 9, 10, 11]) == conformal_quantile(s, 0.5)
    # case A has cells {1, 2, 3, 4} (weight 1/4 each), case B {5}: G = 2, need 0.5·3 = 1.5;
    # cumulative weight 0.25, 0.5, 0.75, 1.0 at 1..4 and 2.0 at 5, so q = 5; unweighted
    # (5 cases, need 3) it would be 3
    assert conformal_quantile([1, 2, 3, 4, 5], 0.5, groups=[0, 0, 0, 0, 1]) == 5.0
    assert conformal_quantile([1, 2, 3, 4, 5], 0.5) == 3.0
    # case A {1, 5}, B {2, 6}, C {3, 7}: G = 3, need 0.5·4 = 2 reached at 5 (0.5·3 + 0.5)
    assert conformal_quantile([1, 5, 2, 6, 3, 7], 0.5, groups=[0, 0, 1, 1, 2, 2]) == 5.0


def test_conformal_quantile_of_gaussian_errors_is_the_gaussian_quantile():
    """Standardized errors N(0, s²): q → 1.645·s (200 cases of 50 cells)."""
    rng = np.random.default_rng(2)
    err = np.abs(rng.normal(0, 2.0, (200, 50)))
    groups = np.repeat(np.arange(200), 50)
    q = conformal_quantile(err.ravel(), 0.9, groups=groups)
    assert abs(q / 2.0 - 1.6448536) < 0.05


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"scores": [1.0], "level": 1.0}, "level must be in"),
        ({"scores": []}, "at least one"),
        ({"scores": [1.0, float("nan")]}, "NaN"),
        ({"scores": [1.0, 2.0], "groups": [0]}, "one per score"),
    ],
)
def test_conformal_quantile_bad_input(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        conformal_quantile(**kwargs)
