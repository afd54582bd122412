"""pyrovae.arviz_compat on whichever ArviZ is installed: 0.x (InferenceData, Python 3.11)
or >= 1.0 (DataTree, Python >= 3.12; ``.ci/run`` runs this file there in a venv
without torch). Imports the module by path, so neither torch nor Pyro is needed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SPEC = importlib.util.spec_from_file_location(
    "pyrovae_arviz", Path(__file__).resolve().parents[2] / "pyrovae" / "arviz_compat.py"
)
ax = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(ax)


def _groups(rng, draws=400, n=3, latent=2, feat=4):
    return {
        "posterior": {"z": rng.normal(1.5, 2.0, (1, draws, n, latent))},
        "posterior_predictive": {"x": rng.random((1, draws, n, feat))},
        "log_likelihood": {"x": rng.normal(size=(1, draws, n))},
        "observed_data": {"x": rng.random((n, feat))},
    }


def _build(rng):
    dims = {"z": ["datum", "latent"], "x": ["datum", "feature"]}
    coords = {"datum": np.array([10, 11, 12]), "latent": np.arange(2), "feature": np.arange(4)}
    return ax.from_groups(_groups(rng), dims=dims, coords=coords)


def test_groups_dims_and_coords():
    data = _build(np.random.default_rng(0))
    expected = {"posterior", "posterior_predictive", "log_likelihood", "observed_data"}
    assert set(ax.group_names(data)) == expected
    z = ax.group(data, "posterior")["z"]
    assert z.dims == ("chain", "draw", "datum", "latent") and z.shape == (1, 400, 3, 2)
    assert list(z["datum"].values) == [10, 11, 12]
    assert ax.group(data, "log_likelihood")["x"].dims == ("chain", "draw", "datum")
    assert ax.group(data, "observed_data")["x"].dims == ("datum", "feature")
    kind = "DataTree" if ax.major_version() >= 1 else "InferenceData"
    assert type(data).__name__ == kind


def test_netcdf_round_trip(tmp_path):
    data = _build(np.random.default_rng(1))
    path = ax.to_netcdf(data, tmp_path / "posterior.nc")
    back = ax.from_netcdf(path)
    assert set(ax.group_names(back)) == set(ax.group_names(data))
    np.testing.assert_allclose(
        ax.group(back, "posterior")["z"].values, ax.group(data, "posterior")["z"].values
    )


def test_summary_mean_sd_hdi():
    """Draws of N(1.5, 2^2): summary mean within 0.3 and sd within 0.3 (400 draws)."""
    table = ax.summary(_build(np.random.default_rng(2)), var_names=["z"])
    assert table.shape[0] == 6
    assert np.allclose(table["mean"].astype(float), 1.5, atol=0.3)
    assert np.allclose(table["sd"].astype(float), 2.0, atol=0.3)
    hdi = [c for c in table.columns if "hdi" in c]
    assert len(hdi) == 2
    lo, hi = (table[c].astype(float) for c in hdi)
    assert (lo < table["mean"].astype(float)).all() and (hi > table["mean"].astype(float)).all()


def test_forest_plot_through_arviz(tmp_path):
    pytest.importorskip("matplotlib")
    path = ax.plot_forest(_build(np.random.default_rng(3)), tmp_path / "forest.png", ["z"])
    assert path.stat().st_size > 1000
