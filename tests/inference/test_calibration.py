"""Simulation-based calibration: uniform ranks for the exact posterior, not for a wrong one."""

from __future__ import annotations

import pytest

from pyrovae.errors import ConfigError
from pyrovae.inference.calibration import plot_rank_histograms, sbc


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
