r"""A pricer decoder: z -> Heston parameters -> the implied-volatility surface.

``--net heston-pricer`` decodes a code :math:`z` through an MLP to four (or five) raw
numbers :math:`u`, maps them into the Heston parameters through constraining transforms,
and prices the surface of the run's grid with the semi-closed-form pricer
(:func:`pyrovae.finance.heston_implied_vol`):

.. math::

    \theta_j = \ell_j + (h_j - \ell_j)\,\mathrm{sigmoid}(u_j), \qquad
    \theta = (\kappa, \eta, \rho, \sigma)\ [,\ v_0],

into the data's parameter ranges :math:`[\ell_j, h_j]` (``kappa``, ``eta``, ``rho``,
``sigma`` of ``--data heston``), so :math:`\kappa, \eta, \sigma > 0` and
:math:`\rho \in (-1, 1)` whenever the ranges are; for :math:`\rho` this is the
:math:`\tanh` map rescaled to the range. :math:`v_0` is the data's (``v0``) unless
``learn_v0`` is set, when it is a fifth output mapped into ``v0_range``. Every decoded
mean is therefore a Heston surface, free of static arbitrage (calendar and butterfly,
:mod:`pyrovae.finance.arbitrage`) by construction, as every Heston surface is; compare
Ning, Jaimungal, Zhang & Bergeron (2021), who map surfaces to model parameters.

The grid. The decoder reads the options of ``--data heston`` (its keyword options, the
same names and defaults: ``maturity_days``, ``strikes``, ``k_min``, ``k_max``,
``observable``, ``cells``, the parameter ranges, ...), so it prices the cells the
data's rows hold, in the same (maturity, strike) order, as the same observable
(``w`` total variance or ``iv``). ``pyrovae train --data heston --net heston-pricer``
passes the run's data options (:meth:`HestonPricerDecoder.options_from_run`); they are
stored with the run's ``net_options``, so the run reloads with its grid. With
``cells = "common"`` the kept cells are those present in every generated surface
(read from the data's cache, or generated once), also kept as a buffer.

Missing implied volatilities. Where the inversion of a decoded price fails (no time
value above the pricer's accuracy, deep out of the money at short maturities), the
cell gets the Black–Scholes volatility of the expected total variance
:math:`\sqrt{w(\tau)/\tau}`, :math:`w = \eta\tau + (v_0 - \eta)(1 - e^{-\kappa\tau})/\kappa`
(the pricer's control variate): finite and differentiable, so the likelihood and its
gradient stay defined. :attr:`HestonPricerDecoder.fallback_cells` counts such cells in
the last forward pass; :meth:`HestonPricerDecoder.surface` returns the grid with NaN
there instead. Cells missing in the *data* are the data's mask (``cells = "all"`` with
observation masks), not the decoder's business.

The output is in the data's own units: train with ``--scale none`` (a fixed affine
scaling of the rows would have to be undone inside the decoder). Further likelihood
channels (e.g. the log-scale of ``gaussian-het``) are learned per-cell constants.

References
----------
Y. Ning, S. Jaimungal, X. Zhang and M. Bergeron (2021), Arbitrage-free implied
volatility surface generation with variational autoencoders, arXiv:2108.04941.
S. L. Heston (1993), Review of Financial Studies 6(2), 327–343.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from ..data.heston import CONDITION_NAMES, HestonSpec, heston_surfaces
from ..errors import ConfigError, PyrovaeError
from ..finance import HestonParams, expected_total_variance, heston_implied_vol
from . import DECODERS, ENCODERS
from .base import check_hidden, mlp, numel
from .mlp import MLPEncoder

#: Surfaces priced together in one call of the pricer (bounds memory and the autograd
#: graph; larger batches are priced in chunks).
CHUNK = 32


def heston_grid_spec(options: dict) -> HestonSpec:
    """The :class:`~pyrovae.data.heston.HestonSpec` of ``options`` (data options), with
    a one-line :class:`ConfigError` for a bad one."""
    try:
        return HestonSpec.from_options(dict(options))
    except PyrovaeError as exc:
        raise ConfigError(f"heston-pricer net options: {exc}") from None


def kept_cells(spec: HestonSpec, root=None) -> torch.Tensor:
    """``(T, K)`` boolean: the grid cells the data of ``spec`` keep as features (the
    surfaces read from the cache under the data root ``root``, or generated)."""
    if spec.cells == "all":
        return torch.ones(len(spec.maturity_days), len(spec.log_moneyness), dtype=torch.bool)
    return torch.from_numpy(heston_surfaces(spec, root=root).common_cells())


@ENCODERS.register("heston-pricer")
class HestonPricerEncoder(MLPEncoder):
    """The encoder of ``--net heston-pricer``: an :class:`MLPEncoder` (the grid options
    the decoder reads are accepted and not used)."""

    def __init__(
        self,
        data_shape: Sequence[int],
        hidden: Sequence[int] = (400,),
        activation: str = "relu",
        **grid_options,
    ) -> None:
        super().__init__(data_shape, hidden=hidden, activation=activation)


@DECODERS.register("heston-pricer")
class HestonPricerDecoder(nn.Module):
    """z -> MLP -> constrained Heston parameters -> the surface of the data's grid.

    Parameters
    ----------
    latent_dim : int
        Size of z.
    data_shape : tuple of int
        Shape of one datum: the number of kept cells of the grid (``(D,)``, any shape
        with ``D`` elements).
    out_channels : int
        The likelihood's ``param_channels``: channel 0 is the surface, any further
        channel a learned per-cell constant.
    hidden : sequence of int
        Hidden widths of the MLP, data side first (as :class:`MLPDecoder`).
    activation : str
        Name in :data:`~pyrovae.nets.ACTIVATIONS`.
    learn_v0 : bool
        Decode :math:`v_0` too (into ``v0_range``) instead of the data's ``v0``.
    v0_range : (float, float), optional
        Range of a decoded :math:`v_0` (default ``[v0 / 4, 4 v0]``).
    chunk : int
        Surfaces priced per call of the pricer.
    data_root : str, optional
        Data root of the cached surfaces that give the common cells (default: the data
        layer's).
    **grid_options
        The options of ``--data heston`` (module docstring): grid, observable, cells,
        parameter ranges, ``v0``.
    """

    #: This body decodes only the rows of its own grid (the contract tests build it
    #: with :meth:`example`, not on arbitrary shapes).
    any_data_shape = False

    def __init__(
        self,
        latent_dim: int,
        data_shape: Sequence[int],
        out_channels: int = 1,
        hidden: Sequence[int] = (400,),
        activation: str = "relu",
        learn_v0: bool = False,
        v0_range: Sequence[float] | None = None,
        chunk: int = CHUNK,
        data_root: str | None = None,
        **grid_options,
    ) -> None:
        super().__init__()
        hidden = check_hidden(hidden)
        spec = heston_grid_spec(grid_options)
        self.data_shape = tuple(int(s) for s in data_shape)
        self.out_channels = int(out_channels)
        self.observable = spec.observable
        self.learn_v0 = bool(learn_v0)
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
            raise ConfigError(f"heston-pricer chunk must be a positive integer; got {chunk!r}")
        self.chunk = chunk
        keep = kept_cells(spec, data_root)
        if numel(self.data_shape) != int(keep.sum()):
            raise ConfigError(
                f"the heston-pricer decoder's grid keeps {int(keep.sum())} cells "
                f"({len(spec.maturity_days)} maturities x {len(spec.log_moneyness)} strikes, "
                f"cells={spec.cells}) but the data have {numel(self.data_shape)} features; "
                "train it on --data heston with the same --data-options"
            )
        lo = [getattr(spec, n)[0] for n in CONDITION_NAMES]
        hi = [getattr(spec, n)[1] for n in CONDITION_NAMES]
        if self.learn_v0:
            v_lo, v_hi = _v0_range(v0_range, spec.v0)
            lo, hi = [*lo, v_lo], [*hi, v_hi]
        elif v0_range is not None:
            raise ConfigError("heston-pricer option v0_range needs learn_v0=true")
        f64 = torch.float64
        self.register_buffer("keep", keep)
        self.register_buffer("log_moneyness", torch.as_tensor(spec.log_moneyness, dtype=f64))
        self.register_buffer("maturities", torch.as_tensor(spec.maturities, dtype=f64))
        self.register_buffer("low", torch.tensor(lo, dtype=f64))
        self.register_buffer("high", torch.tensor(hi, dtype=f64))
        self.register_buffer("v0", torch.tensor(spec.v0, dtype=f64))
        self.iv_tol = spec.iv_tol
        self.net = mlp((latent_dim, *reversed(hidden), len(lo)), activation, final_activation=False)
        d = numel(self.data_shape)
        self.extra = nn.Parameter(torch.zeros(max(self.out_channels - 1, 0), d))
        #: kept cells that got the fallback value in the last forward pass
        self.fallback_cells = 0

    # -- the run's options ---------------------------------------------------------
    @classmethod
    def options_from_run(cls, config: dict) -> dict:
        """The decoder's options for a run configured by ``config`` (the resolved run
        options): the data options of ``--data heston``, or none for other data (the
        size check then names the mismatch). Scaled rows are refused with one line."""
        if config.get("data") != "heston":
            return {}
        if config.get("scale", "none") != "none":
            raise ConfigError(
                "the heston-pricer decoder outputs surfaces in the data's units; "
                f"train it with --scale none (got --scale {config['scale']})"
            )
        options = dict(config.get("data_options") or {})
        if config.get("data_root") is not None:
            options["data_root"] = str(Path(config["data_root"]).resolve())
        return options

    @classmethod
    def example(cls) -> tuple[tuple[int, ...], dict]:
        """A small data shape and the options that decode it (for the contract tests)."""
        options = {"maturity_days": [30, 120], "strikes": 6, "cells": "all"}
        return (2 * 7,), options

    # -- decoding --------------------------------------------------------------------
    def heston_params(self, z: torch.Tensor) -> HestonParams:
        """The constrained Heston parameters of codes ``z`` ``(..., latent_dim)``
        (float64, batch shape ``z.shape[:-1]``)."""
        u = self.net(z).to(torch.float64)
        theta = self.low + (self.high - self.low) * torch.sigmoid(u)
        kappa, eta, rho, sigma = theta[..., :4].unbind(-1)
        v0 = theta[..., 4] if self.learn_v0 else self.v0.expand_as(kappa)
        return HestonParams(v0, kappa, eta, rho, sigma)

    def _price(self, p: HestonParams) -> tuple[torch.Tensor, torch.Tensor]:
        """Implied vols ``(N, T, K)`` (fallback where the inversion fails) and the mask
        of the cells that have one, for flat parameters, in chunks."""
        ivs, oks = [], []
        for start in range(0, p.shape[0], self.chunk):
            part = HestonParams(*(getattr(p, n)[start : start + self.chunk] for n in p.NAMES))
            iv, ok = heston_implied_vol(
                part, self.log_moneyness, self.maturities, iv_tol=self.iv_tol
            )
            tau = self.maturities[:, None]
            v0, kappa, eta = (getattr(part, n)[:, None, None] for n in ("v0", "kappa", "eta"))
            w = expected_total_variance(tau, v0, kappa, eta)
            ivs.append(torch.where(ok, iv, torch.sqrt(w / tau)))
            oks.append(ok)
        return torch.cat(ivs), torch.cat(oks)

    def surface(self, z: torch.Tensor, observable: str | None = None) -> torch.Tensor:
        """The decoded surfaces on the whole grid, ``(..., T, K)`` float64, as
        ``observable`` (default the data's), NaN where the implied volatility does not
        exist."""
        p = self.heston_params(z)
        iv, ok = self._price(p.flat())
        iv = torch.where(ok, iv, torch.full_like(iv, float("nan")))
        out = self._observable(iv, observable or self.observable)
        return out.reshape(*z.shape[:-1], *out.shape[-2:])

    def _observable(self, iv: torch.Tensor, observable: str) -> torch.Tensor:
        return iv**2 * self.maturities[:, None] if observable == "w" else iv

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        batch = z.shape[:-1]
        p = self.heston_params(z.reshape(-1, z.shape[-1]))
        iv, ok = self._price(p)
        self.fallback_cells = int((~ok & self.keep).sum())
        rows = self._observable(iv, self.observable)[:, self.keep].to(z.dtype)
        out = rows.reshape(*batch, 1, *self.data_shape)
        if self.extra.shape[0]:
            extra = self.extra.reshape(-1, *self.data_shape).to(z.dtype)
            channel = -1 - len(self.data_shape)
            out = torch.cat([out, extra.expand(*batch, *extra.shape)], dim=channel)
        return out


def _v0_range(v0_range, v0: float) -> tuple[float, float]:
    if v0_range is None:
        return v0 / 4, v0 * 4
    try:
        lo, hi = (float(v) for v in v0_range)
    except (TypeError, ValueError):
        raise ConfigError(
            f"heston-pricer option v0_range must be [low, high]; got {v0_range!r}"
        ) from None
    if not 0 < lo <= hi:
        raise ConfigError(
            f"heston-pricer option v0_range must have 0 < low <= high; got {v0_range!r}"
        )
    return lo, hi
