"""The one place pyrovae talks to ArviZ, for both of its APIs.

ArviZ 0.x (Python 3.11 here: 0.23) builds an ``InferenceData`` from
``az.from_dict(posterior=..., observed_data=..., ...)``; ArviZ >= 1.0 (Python
>= 3.12) takes ``az.from_dict({"posterior": {...}, ...})`` and returns an
``xarray.DataTree``, and has no ``from_pyro``. pyrovae builds its groups as plain
dicts of NumPy arrays ``(chain, draw, *shape)`` and converts them here. This
module imports neither torch nor Pyro, so it can be tested on its own.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np


def arviz():
    """Import ArviZ quietly (0.x warns about its coming refactor at import)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz as az
    return az


def major_version() -> int:
    """ArviZ's major version (0 or 1+)."""
    return int(str(arviz().__version__).split(".")[0])


def from_groups(
    groups: dict[str, dict[str, np.ndarray]],
    dims: dict[str, list[str]] | None = None,
    coords: dict[str, Any] | None = None,
):
    """Build ArviZ data from ``{group: {variable: array (chain, draw, ...)}}``.

    ``observed_data`` arrays have no chain/draw axes. Returns an ``InferenceData``
    (ArviZ 0.x) or an ``xarray.DataTree`` (ArviZ >= 1.0).
    """
    az = arviz()
    groups = {g: {k: np.asarray(v) for k, v in vs.items()} for g, vs in groups.items()}
    if major_version() >= 1:
        return az.from_dict(groups, dims=dims, coords=coords)
    return az.from_dict(**groups, dims=dims, coords=coords)


def group_names(data) -> list[str]:
    """The groups of an InferenceData or DataTree."""
    if hasattr(data, "groups") and callable(data.groups):
        return list(data.groups())
    return [str(name).strip("/") for name in data.children]


def group(data, name: str):
    """One group as an ``xarray.Dataset``."""
    ds = data[name]
    return ds.to_dataset() if hasattr(ds, "to_dataset") else ds


def to_netcdf(data, path: str | Path) -> Path:
    """Write to netCDF (readable back with :func:`from_netcdf` or ArviZ itself)."""
    path = Path(path)
    data.to_netcdf(str(path))
    return path


def from_netcdf(path: str | Path):
    """Read a netCDF file written by :func:`to_netcdf`."""
    az = arviz()
    if hasattr(az, "from_netcdf"):
        return az.from_netcdf(str(path))
    import xarray as xr

    return xr.open_datatree(str(path))


def summary(data, var_names: list[str] | None = None, hdi_prob: float = 0.94):
    """Mean, sd and the HDI of each variable of the posterior group (a DataFrame)."""
    az = arviz()
    if major_version() >= 1:
        return az.summary(data, var_names=var_names, ci_kind="hdi", ci_prob=hdi_prob)
    return az.summary(data, var_names=var_names, hdi_prob=hdi_prob, kind="stats")


def plot_forest(data, path: str | Path, var_names: list[str] | None = None) -> Path:
    """ArviZ's forest plot (posterior intervals per variable) saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    az = arviz()
    path = Path(path)
    if major_version() >= 1:
        az.plot_forest(data, var_names=var_names, backend="matplotlib").savefig(path)
    else:
        axes = az.plot_forest(data, var_names=var_names, combined=True)
        np.ravel(axes)[0].figure.savefig(path)
    plt.close("all")
    return path
