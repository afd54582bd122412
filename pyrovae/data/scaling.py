"""Feature scaling for continuous data, fitted on the training split only.

* none: x' = x.
* standardize: x' = (x - mean) / sd, per feature (sd = 1 where a feature is constant).
* minmax: x' = (x - min) / (max - min), per feature, into [0, 1].

A data set read on demand (:class:`~pyrovae.data.stream.MemmapArray`) is fitted in
chunks (:func:`~pyrovae.data.stream.feature_moments`,
:func:`~pyrovae.data.stream.feature_range`) and transformed lazily, batch by batch.
"""

from __future__ import annotations

import torch

from . import SCALERS
from .stream import feature_moments, feature_range, is_stream


class Scaler:
    """Affine per-feature scaling x' = (x - shift) / scale, saved as plain data.

    Parameters
    ----------
    method : str
        Name in :data:`~pyrovae.data.SCALERS`.
    """

    def __init__(self, method: str = "none") -> None:
        self.fit_fn = SCALERS.get(method)
        self.method = method
        self.shift: torch.Tensor | None = None
        self.scale: torch.Tensor | None = None

    def fit(self, x: torch.Tensor) -> Scaler:
        self.shift, self.scale = self.fit_fn(x)
        return self

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        if self.shift is None:
            return x
        if is_stream(x):
            return x.map(self.transform)
        return (x - self.shift) / self.scale

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        if self.shift is None:
            return x
        if is_stream(x):
            return x.map(self.inverse)
        return x * self.scale + self.shift

    def state_dict(self) -> dict:
        return {"method": self.method, "shift": self.shift, "scale": self.scale}

    @classmethod
    def from_state(cls, state: dict) -> Scaler:
        s = cls(state["method"])
        s.shift, s.scale = state["shift"], state["scale"]
        return s


@SCALERS.register("none")
def _none(x: torch.Tensor):
    """Leave the data as it is."""
    return None, None


@SCALERS.register("standardize")
def _standardize(x: torch.Tensor):
    """Per feature: subtract the training mean, divide by the training sd."""
    mean, sd = feature_moments(x)
    return mean, torch.where(sd > 0, sd, torch.ones_like(sd))


@SCALERS.register("minmax")
def _minmax(x: torch.Tensor):
    """Per feature: map the training range onto [0, 1]."""
    lo, hi = feature_range(x)
    rng = hi - lo
    return lo, torch.where(rng > 0, rng, torch.ones_like(rng))
