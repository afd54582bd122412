"""Binarization of grey-level data in [0, 1] (registry :data:`BINARIZATIONS`).

* ``none``: keep the grey levels.
* ``static``: threshold every split once at 0.5.
* ``dynamic`` (Salakhutdinov & Murray 2008; the "dynamically binarized MNIST" of the VAE
  literature): a fresh Bernoulli draw x ~ Bernoulli(grey level) of every training
  batch at every epoch, from the trainer's seeded shuffling stream (so resumed runs
  draw the same); validation and test data are drawn once, with the split seed.

Data read on demand (``--stream``) can be binarized statically (thresholded as each
batch is read); dynamic binarization draws the held-out splits once, in memory, and is
not available for them.
"""

from __future__ import annotations

import torch

from ..errors import DataError
from ..registry import Registry
from .stream import is_stream

BINARIZATIONS: Registry = Registry("binarization")


def draw_bernoulli(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One Bernoulli draw per entry, with probabilities ``x``."""
    return (torch.rand(x.shape, generator=generator, device=x.device) < x).to(x.dtype)


def _check_unit(x: torch.Tensor, how: str) -> None:
    if not x.numel():
        return
    lo, hi = x.extrema() if is_stream(x) else (float(x.min()), float(x.max()))
    if lo < 0 or hi > 1:
        raise DataError(f"{how} binarization needs data in [0, 1]; got values in [{lo:g}, {hi:g}]")


def _threshold(x: torch.Tensor) -> torch.Tensor:
    return x.map(_threshold) if is_stream(x) else (x > 0.5).float()


@BINARIZATIONS.register("none")
def no_binarization(train, val, test, generator):
    """Keep grey levels."""
    return train, val, test, None


@BINARIZATIONS.register("static")
def static_binarization(train, val, test, generator):
    """Threshold every split once at 0.5."""
    for t in (train, val, test):
        _check_unit(t, "static")
    return _threshold(train), _threshold(val), _threshold(test), None


@BINARIZATIONS.register("dynamic")
def dynamic_binarization(train, val, test, generator):
    """Fresh Bernoulli draws of the training data every epoch; held-out data drawn once."""
    if is_stream(train):
        raise DataError(
            "dynamic binarization draws the held-out data once in memory; with --stream "
            "use --binarize static"
        )
    for t in (train, val, test):
        _check_unit(t, "dynamic")
    return train, draw_bernoulli(val, generator), draw_bernoulli(test, generator), draw_bernoulli
