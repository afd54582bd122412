r"""Heston implied-volatility surfaces: ``--data heston``.

The setting of the lecture notes' VAE for Heston surfaces (``shared/seeds``; issue 19):
spot 1, :math:`r = q = 0`, initial variance :math:`v_0 = 0.05`; maturities of 6, 12
and 18 days and :math:`26j` days for :math:`j = 1, \dots, 14` (17 maturities, a
year of 365 days); log-moneyness :math:`k = x^3` for :math:`x` in
``linspace(-0.4**(1/3), 0.6**(1/3), 100)`` plus :math:`k = 0` (101 strikes, denser
near the money); the parameters :math:`\kappa \in [0.1, 0.9]`,
:math:`\eta \in [0.05^2, 0.25^2]` (long-run variance), :math:`\rho \in [-0.9, -0.1]`
and :math:`\sigma \in [0.1, 0.5]` (volatility of variance), five equally spaced values
each: :math:`5^4 = 625` surfaces. Each surface is priced with
:func:`pyrovae.finance.heston_implied_vol` (semi-closed form, absolute price accuracy
``1e-13`` per unit forward) and inverted to Black–Scholes implied volatility.

Missing cells. A cell has no implied volatility where the price has no time value
above the pricer's accuracy (deep out of the money at short maturities), or where that
accuracy leaves the implied volatility undetermined by more than ``iv_tol`` (default
``1e-6``). Missing cells are NaN in the surface array and false in its mask; they are
never cropped away or filled in. The notes' VAE sees total variance
:math:`w = \sigma_{IV}^2\tau` on the cells that have a value in *every* surface; that
is ``cells = "common"`` (the default, so that ``pyrovae train --data heston`` works
with a Gaussian likelihood); ``cells = "all"`` gives every grid cell with NaN where
missing (for training on observed entries only, see issue 16).

Options (``--data-options KEY=VALUE``, repeatable; a ``[data_options]`` table in a
TOML config; or keyword arguments of :func:`load_heston`):

==============  ==========================  ==============================================
option          default                     meaning
==============  ==========================  ==============================================
observable      ``"w"``                     ``"w"`` total variance or ``"iv"`` implied vol
cells           ``"common"``                ``"common"`` or ``"all"`` (NaN where missing)
params          ``"grid"``                  ``"grid"`` (``levels`` values per parameter) or
                                            ``"random"`` (``n`` uniform draws, ``seed``)
levels          5                           values per parameter on the grid
n               625                         surfaces drawn with ``params = "random"``
seed            0                           seed of the random draws
kappa           ``[0.1, 0.9]``              range of the mean-reversion speed
eta             ``[0.0025, 0.0625]``        range of the long-run variance
rho             ``[-0.9, -0.1]``            range of the correlation
sigma           ``[0.1, 0.5]``              range of the volatility of variance
v0              0.05                        initial variance (every surface)
maturity_days   6, 12, 18, 26, ..., 364     maturities in days (year of 365 days)
strikes         100                         cubic grid points (plus ``k = 0``)
k_min, k_max    -0.4, 0.6                   ends of the log-moneyness grid
iv_tol          1e-6                        implied-vol accuracy a kept cell needs
==============  ==========================  ==============================================

The rows of the data are the surfaces' kept cells in (maturity, strike) order; the
conditions (:attr:`~pyrovae.data.DataSplits.conditions_train`, ...) are the parameters
``kappa, eta, rho, sigma`` of each surface, float32 ``(N, 4)``. The surfaces are
generated once per set of generating options and cached under the data root
(``ROOT/heston/surfaces-HASH.npz``, written atomically); :func:`heston_surfaces` gives
the whole :class:`HestonSurfaces` (grid, implied volatilities, mask, parameters).

References
----------
S. L. Heston (1993), Review of Financial Studies 6(2), 327–343.
S. Baghal, Variational autoencoder for Heston (the lecture notes' example;
``shared/seeds/001_*.txt``).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, ParameterError
from ..finance import HestonParams, heston_implied_vol
from . import DATASETS
from .datasets import RawData, default_root

logger = logging.getLogger(__name__)

#: Bump when the generated numbers change, so that older caches are not read.
GENERATOR_VERSION = 1
DAYS_PER_YEAR = 365.0
NOTES_MATURITY_DAYS = (6, 12, 18, *(26 * j for j in range(1, 15)))
#: The parameters kept as conditions, in column order.
CONDITION_NAMES = ("kappa", "eta", "rho", "sigma")
OBSERVABLES = ("w", "iv")
CELLS = ("common", "all")
PARAMS = ("grid", "random")
#: Surfaces priced together (bounds the pricer's memory).
CHUNK = 1024


def cubic_log_moneyness(n: int = 100, k_min: float = -0.4, k_max: float = 0.6) -> np.ndarray:
    """The notes' strikes: ``x**3`` for ``x`` in ``linspace(cbrt(k_min), cbrt(k_max), n)``
    plus ``k = 0``, sorted (``n + 1`` values unless 0 is already on the grid)."""
    x = np.linspace(np.cbrt(k_min), np.cbrt(k_max), int(n))
    return np.unique(np.append(x**3, 0.0))


def _range(name: str, value) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise DataError(
            f"heston option {name} must be a range [low, high]; got {value!r}"
        ) from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
        raise DataError(f"heston option {name} must be a range [low, high] with low <= high")
    return lo, hi


def _choice(name: str, value, allowed) -> str:
    if value not in allowed:
        raise DataError(f"heston option {name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def _int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise DataError(f"heston option {name} must be an integer >= {low}; got {value!r}")
    return int(value)


def _number(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise DataError(f"heston option {name} must be a number; got {value!r}")
    return float(value)


@dataclass(frozen=True)
class HestonSpec:
    """The options of ``--data heston`` (see the module docstring), checked."""

    observable: str = "w"
    cells: str = "common"
    params: str = "grid"
    levels: int = 5
    n: int = 625
    seed: int = 0
    kappa: tuple[float, float] = (0.1, 0.9)
    eta: tuple[float, float] = (0.05**2, 0.25**2)
    rho: tuple[float, float] = (-0.9, -0.1)
    sigma: tuple[float, float] = (0.1, 0.5)
    v0: float = 0.05
    maturity_days: tuple[float, ...] = NOTES_MATURITY_DAYS
    strikes: int = 100
    k_min: float = -0.4
    k_max: float = 0.6
    iv_tol: float = 1e-6
    #: Options that select from the generated surfaces (not part of the cache key).
    VIEW = ("observable", "cells")

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        _choice("observable", self.observable, OBSERVABLES)
        _choice("cells", self.cells, CELLS)
        _choice("params", self.params, PARAMS)
        set_(self, "levels", _int("levels", self.levels, 1))
        set_(self, "n", _int("n", self.n, 1))
        set_(self, "seed", _int("seed", self.seed, 0))
        set_(self, "strikes", _int("strikes", self.strikes, 2))
        for name in CONDITION_NAMES:
            set_(self, name, _range(name, getattr(self, name)))
        for name in ("v0", "k_min", "k_max", "iv_tol"):
            set_(self, name, _number(name, getattr(self, name)))
        days = self.maturity_days
        if isinstance(days, (int, float)):
            days = (days,)
        try:
            days = tuple(float(d) for d in days)
        except (TypeError, ValueError):
            raise DataError(
                f"heston option maturity_days must be a list of days; got {days!r}"
            ) from None
        if not days or any(not (np.isfinite(d) and d > 0) for d in days):
            raise DataError("heston option maturity_days must be positive numbers of days")
        if any(b <= a for a, b in zip(days[:-1], days[1:], strict=True)):
            raise DataError("heston option maturity_days must be increasing")
        set_(self, "maturity_days", days)
        if not self.k_min < 0 < self.k_max:
            raise DataError(
                f"heston options need k_min < 0 < k_max; got k_min={self.k_min:g}, "
                f"k_max={self.k_max:g}"
            )
        if not self.iv_tol > 0:
            raise DataError(f"heston option iv_tol must be > 0; got {self.iv_tol:g}")
        lo = np.array([r[0] for r in (self.kappa, self.eta, self.rho, self.sigma)])
        hi = np.array([r[1] for r in (self.kappa, self.eta, self.rho, self.sigma)])
        try:  # the corners of the box (and v0) are valid Heston parameters
            HestonParams(self.v0, *torch.tensor(np.stack([lo, hi], 0)).unbind(1))
        except ParameterError as exc:
            raise DataError(f"heston options: {exc}") from None

    @classmethod
    def from_options(cls, options: dict) -> HestonSpec:
        """From ``--data-options`` (unknown keys: a one-line error with a suggestion)."""
        names = [f.name for f in fields(cls)]
        for key in options:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise DataError(
                    f"unknown option {key!r} of dataset 'heston'{hint}; options: {', '.join(names)}"
                )
        return cls(**options)

    def generating(self) -> dict:
        """The options that determine the generated numbers (the cache key)."""
        out = asdict(self)
        for key in self.VIEW:
            out.pop(key)
        if self.params == "grid":
            out.pop("n"), out.pop("seed")
        else:
            out.pop("levels")
        return out

    def cache_name(self) -> str:
        key = json.dumps({"version": GENERATOR_VERSION, **self.generating()}, sort_keys=True)
        return f"surfaces-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"

    @property
    def maturities(self) -> np.ndarray:
        """Maturities in years."""
        return np.asarray(self.maturity_days, dtype=np.float64) / DAYS_PER_YEAR

    @property
    def log_moneyness(self) -> np.ndarray:
        return cubic_log_moneyness(self.strikes, self.k_min, self.k_max)

    def parameters(self) -> np.ndarray:
        """``(N, 4)`` float64 parameter sets ``kappa, eta, rho, sigma``: the grid in C
        order (kappa slowest), or seeded uniform draws in the ranges."""
        ranges = [getattr(self, n) for n in CONDITION_NAMES]
        if self.params == "grid":
            axes = [np.linspace(lo, hi, self.levels) for lo, hi in ranges]
            mesh = np.meshgrid(*axes, indexing="ij")
            return np.stack([m.ravel() for m in mesh], axis=1)
        rng = np.random.default_rng(self.seed)
        lo = np.array([r[0] for r in ranges])
        hi = np.array([r[1] for r in ranges])
        return lo + (hi - lo) * rng.random((self.n, 4))


@dataclass
class HestonSurfaces:
    """Generated Heston surfaces on one grid.

    Attributes
    ----------
    iv : ndarray
        ``(N, T, K)`` float64 implied volatilities, NaN where missing.
    params : ndarray
        ``(N, 4)`` float64 ``kappa, eta, rho, sigma``.
    maturities : ndarray
        ``(T,)`` years.
    log_moneyness : ndarray
        ``(K,)`` :math:`\\ln(K/F)`.
    spec : HestonSpec
        The options they were generated (and are viewed) with.
    """

    iv: np.ndarray
    params: np.ndarray
    maturities: np.ndarray
    log_moneyness: np.ndarray
    spec: HestonSpec = field(default_factory=HestonSpec)

    @property
    def mask(self) -> np.ndarray:
        """``(N, T, K)`` True where the implied volatility exists."""
        return ~np.isnan(self.iv)

    @property
    def w(self) -> np.ndarray:
        """Total implied variance ``iv**2 * tau``, NaN where missing."""
        return self.iv**2 * self.maturities[:, None]

    def surface(self, observable: str | None = None) -> np.ndarray:
        """``(N, T, K)`` of ``observable`` (default: the spec's)."""
        name = _choice("observable", observable or self.spec.observable, OBSERVABLES)
        return self.w if name == "w" else self.iv

    def common_cells(self) -> np.ndarray:
        """``(T, K)`` True where every surface has an implied volatility."""
        return self.mask.all(axis=0)

    def cells(self, which: str | None = None) -> np.ndarray:
        """``(T, K)`` boolean of the cells kept as features (``"common"`` or ``"all"``)."""
        which = _choice("cells", which or self.spec.cells, CELLS)
        return self.common_cells() if which == "common" else np.ones(self.iv.shape[1:], bool)

    def rows(self, observable: str | None = None, cells: str | None = None) -> np.ndarray:
        """``(N, D)`` float64: the kept cells of each surface in (maturity, strike) order."""
        return self.surface(observable)[:, self.cells(cells)]

    def to_grid(self, rows, cells: str | None = None) -> np.ndarray:
        """Rows ``(..., D)`` back on the ``(..., T, K)`` grid, NaN at cells not kept."""
        rows = np.asarray(rows, dtype=np.float64)
        keep = self.cells(cells)
        if rows.shape[-1] != int(keep.sum()):
            raise DataError(f"rows have {rows.shape[-1]} values; the grid keeps {int(keep.sum())}")
        out = np.full((*rows.shape[:-1], *keep.shape), np.nan)
        out[..., keep] = rows
        return out


def generate(spec: HestonSpec) -> HestonSurfaces:
    """Price and invert every surface of ``spec`` (no cache)."""
    params = spec.parameters()
    tau = torch.from_numpy(spec.maturities)
    k = torch.from_numpy(spec.log_moneyness)
    out = np.empty((params.shape[0], tau.numel(), k.numel()))
    for start in range(0, params.shape[0], CHUNK):
        chunk = torch.from_numpy(params[start : start + CHUNK])
        p = HestonParams(spec.v0, *chunk.unbind(1))
        iv, _ = heston_implied_vol(p, k, tau, iv_tol=spec.iv_tol)
        out[start : start + chunk.shape[0]] = iv.numpy()
    return HestonSurfaces(out, params, spec.maturities, spec.log_moneyness, spec)


def heston_surfaces(spec: HestonSpec | None = None, root=None, **options) -> HestonSurfaces:
    """The surfaces of ``spec`` (or of ``options``), read from the cache under ``root``
    (default :func:`~pyrovae.data.datasets.default_root`) or generated and cached."""
    spec = spec or HestonSpec.from_options(options)
    folder = (Path(root) if root is not None else default_root()) / "heston"
    path = folder / spec.cache_name()
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                if json.loads(str(z["spec"])) == json.loads(
                    json.dumps(spec.generating(), sort_keys=True)
                ):
                    return HestonSurfaces(
                        z["iv"], z["params"], z["maturities"], z["log_moneyness"], spec
                    )
        except (OSError, ValueError, KeyError) as exc:
            logger.warning("ignoring unreadable Heston cache %s (%s)", path, exc)
    surfaces = generate(spec)
    from ..atomic import atomic_write_bytes

    record = json.dumps(spec.generating(), sort_keys=True)
    try:
        atomic_write_bytes(
            path,
            lambda fh: np.savez(
                fh,
                iv=surfaces.iv,
                params=surfaces.params,
                maturities=surfaces.maturities,
                log_moneyness=surfaces.log_moneyness,
                spec=np.array(record),
            ),
        )
    except OSError as exc:  # a read-only data folder: no cache, still correct
        logger.info("not caching the Heston surfaces in %s: %s", folder, exc)
    return surfaces


@DATASETS.register("heston")
def load_heston(root=None, download: bool = True, **options) -> RawData:
    """Heston implied-volatility surfaces (the lecture notes' 625; options:
    ``--data-options``)."""
    surfaces = heston_surfaces(HestonSpec.from_options(options), root=root)
    x = surfaces.rows()
    if x.shape[1] == 0:
        raise DataError("no grid cell has an implied volatility in every Heston surface")
    return RawData(
        x=torch.from_numpy(x).to(torch.float32),
        conditions=torch.from_numpy(surfaces.params).to(torch.float32),
        likelihood="gaussian",
    )


#: The options ``--data heston`` accepts (checked by the data layer).
load_heston.options = tuple(f.name for f in fields(HestonSpec))
