"""Binarization of grey-level data in [0, 1] (registry :data:`BINARIZATIONS`).

* ``none``: keep the grey levels.
* ``static``: threshold every split once at 0.5.
* ``dynamic`` (Salakhutdinov & Murray 2008; the "dynamically binarized MNIST" of the VAE
  literature): a fresh Bernoulli draw x ~ Bernoulli(grey level) of every training
  batch at every epoch, from the trainer's seeded shuffling stream (so resumed runs
  draw the same); validation and test data are drawn once, with the split seed.
"""

from __future__ import annotations

import torch

from ..errors import DataError
from ..registry import Registry

BINARIZATIONS: Registry = Registry("binarization")


def draw_bernoulli(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One Bernoulli draw per entry, with probabilities ``x``."""
    return (torch.rand(x.shape, generator=generator, device=x.device) < x).to(x.dtype)


def _check_unit(x: torch.Tensor, how: str) -> None:
    if x.numel() and not bool(((x >= 0) & (x <= 1)).all()):
        raise DataError(
            f"{how} binarization needs data in [0, 1]; got values in "
            f"[{float(x.min()):g}, {float(x.max()):g}]"
        )


@BINARIZATIONS.register("none")
def no_binarization(train, val, test, generator):
    """Keep grey levels."""
    return train, val, test, None


@BINARIZATIONS.register("static")
def static_binarization(train, val, test, generator):
    """Threshold every split once at 0.5."""
    for t in (train, val, test):
        _check_unit(t, "static")
    return (train > 0.5).float(), (val > 0.5).float(), (test > 0.5).float(), None


@BINARIZATIONS.register("dynamic")
def dynamic_binarization(train, val, test, generator):
    """Fresh Bernoulli draws of the training data every epoch; held-out data drawn once."""
    for t in (train, val, test):
        _check_unit(t, "dynamic")
    return train, draw_bernoulli(val, generator), draw_bernoulli(test, generator), draw_bernoulli
