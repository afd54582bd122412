"""Shared pieces of the network bodies: activations and shape helpers."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from ..errors import ConfigError
from ..registry import Registry

ACTIVATIONS: Registry = Registry("activation")
ACTIVATIONS.register("relu")(nn.ReLU)
ACTIVATIONS.register("softplus")(nn.Softplus)
ACTIVATIONS.register("tanh")(nn.Tanh)
ACTIVATIONS.register("elu")(nn.ELU)
ACTIVATIONS.register("gelu")(nn.GELU)


def make_activation(name: str) -> nn.Module:
    """Instantiate the activation registered as ``name``."""
    return ACTIVATIONS.get(name)()


def numel(shape: Sequence[int]) -> int:
    """Number of elements of one datum of ``shape``."""
    return int(math.prod(shape))


def check_hidden(hidden: Sequence[int]) -> tuple[int, ...]:
    """Validate a list of hidden-layer widths."""
    try:
        values = [hidden] if isinstance(hidden, (int, str)) else list(hidden)
        hidden = tuple(int(h) for h in values)
        if any(float(h) != int(h) for h in values):
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(f"hidden layer sizes must be positive integers; got {hidden!r}") from None
    if not hidden or any(h <= 0 for h in hidden):
        raise ConfigError(f"hidden layer sizes must be positive integers; got {list(hidden)}")
    return hidden


def mlp(sizes: Sequence[int], activation: str, final_activation: bool) -> nn.Sequential:
    """A stack of Linear layers with activations between (and optionally after)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if final_activation or i < len(sizes) - 2:
            layers.append(make_activation(activation))
    return nn.Sequential(*layers)
