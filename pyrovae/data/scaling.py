"""Feature scaling for continuous data, fitted on the training split only.

* none: x' = x.
* standardize: x' = (x - mean) / sd, per feature (sd = 1 where a feature is constant).
* minmax: x' = (x - min) / (max - min), per feature, into [0, 1].
"""

from __future__ import annotations

import torch

from . import SCALERS


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
        return (x - self.shift) / self.scale

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        if self.shift is None:
            return x
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
    sd = x.std(0, unbiased=False)
    return x.mean(0), torch.where(sd > 0, sd, torch.ones_like(sd))


@SCALERS.register("minmax")
def _minmax(x: torch.Tensor):
    """Per feature: map the training range onto [0, 1]."""
    lo, hi = x.min(0).values, x.max(0).values
    rng = hi - lo
    return lo, torch.where(rng > 0, rng, torch.ones_like(rng))
