"""pyrovae.inference.psis.pareto_khat against the k-hat of whichever ArviZ is installed:
``az.psislw`` of ArviZ 0.x (Python 3.11 here) or arviz-stats' ``psislw`` of ArviZ
>= 1.0 (the ``.ci/run`` leg on Python 3.12, without torch).

Both fit the same generalized Pareto (Zhang & Stephens 2009, with the PSIS paper's
weak prior) to the M largest weights, M = min(0.2 S, 3 sqrt(S)) for S draws; ArviZ 0.x
rounds M up (as pyrovae and R's loo do), arviz-stats rounds it down. The draw counts
below make M a whole number, where the two agree; ArviZ 0.x is also compared at S = 3000.
The module is loaded by path; torch, which it imports for tensor input only, is stood in
for where it is not installed.
"""

from __future__ import annotations

import importlib.util
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest


def _load_psis():
    stub = None
    try:
        import torch  # noqa: F401
    except ImportError:  # the ArviZ >= 1.0 leg: numpy input only
        stub = sys.modules["torch"] = types.ModuleType("torch")
        stub.is_tensor = lambda obj: False
    try:
        path = Path(__file__).resolve().parents[2] / "pyrovae" / "inference" / "psis.py"
        spec = importlib.util.spec_from_file_location("pyrovae_psis", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if stub is not None:  # other libraries (scipy) look for torch in sys.modules
            del sys.modules["torch"]
    return module


psis = _load_psis()


def _arviz():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz as az
    return az


def _arviz_khat(log_weights: np.ndarray) -> np.ndarray:
    """ArviZ's k-hat of each column of ``log_weights`` (draws x points)."""
    az = _arviz()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if int(az.__version__.split(".")[0]) >= 1:
            import arviz_stats  # noqa: F401 - registers the .azstats accessor
            import xarray as xr

            # arviz-stats' psislw takes log-likelihood values and negates them
            da = xr.DataArray(-log_weights, dims=["draw", "point"])
            return np.asarray(da.azstats.psislw(dim="draw")[1].values)
        return np.array([float(az.psislw(col)[1]) for col in log_weights.T])


def _cases(draws: int) -> np.ndarray:
    """Light, heavy and very heavy log-weight tails (k-hat from below 0 to above 1)."""
    rng = np.random.default_rng(0)
    return np.stack(
        [
            0.1 * rng.normal(size=draws),
            rng.normal(size=draws),
            2 * rng.standard_t(3, size=draws),
            np.log(rng.pareto(1.5, size=draws) + 1),
        ],
        1,
    )


@pytest.mark.parametrize("draws", [400, 3600])
def test_khat_matches_arviz(draws):
    lw = _cases(draws)
    ours = psis.pareto_khat(lw)
    ref = _arviz_khat(lw)
    assert ours.shape == (4,) and ours.min() < 0.5 < 1 < ours.max()  # both regimes
    np.testing.assert_allclose(ours, ref, rtol=1e-10)


def test_khat_matches_arviz_0x_with_a_fractional_tail():
    if int(_arviz().__version__.split(".")[0]) >= 1:
        pytest.skip("arviz-stats rounds the tail length 3 sqrt(3000) down, ArviZ 0.x up")
    lw = _cases(3000)
    np.testing.assert_allclose(psis.pareto_khat(lw), _arviz_khat(lw), rtol=1e-10)
