"""Shared pieces of the network bodies: activations and shape helpers."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import Registry

ACTIVATIONS: Registry = Registry("activation")
ACTIVATIONS.register("relu")(nn.ReLU)
ACTIVATIONS.register("softplus")(nn.Softplus)
ACTIVATIONS.register("tanh")(nn.Tanh)
ACTIVATIONS.register("elu")(nn.ELU)
ACTIVATIONS.register("gelu")(nn.GELU)
ACTIVATIONS.register("leaky_relu")(nn.LeakyReLU)


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


class GatedLinear(nn.Module):
    """Gated linear unit (Dauphin et al. 2017): ``h = (W x + b) * sigmoid(V x + c)``.

    The two affine maps are one ``Linear(in_features, 2 * out_features)`` whose output
    is split in halves (one matrix product instead of two), which is
    ``torch.nn.functional.glu`` of it. Tomczak & Welling (2018) use these layers
    ("GatedDense") in the MLP encoders and decoders of their VampPrior experiments.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, 2 * out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.glu(self.linear(x), dim=-1)


def mlp(
    sizes: Sequence[int], activation: str, final_activation: bool, gated: bool = False
) -> nn.Sequential:
    """A stack of Linear layers with activations between (and optionally after).

    With ``gated=True`` every hidden layer (each layer followed by an activation) is a
    :class:`GatedLinear` instead, and ``activation`` is not used: the gate is the
    non-linearity. A last layer without activation stays a plain ``Linear``.
    """
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        hidden_layer = final_activation or i < len(sizes) - 2
        if gated and hidden_layer:
            layers.append(GatedLinear(a, b))
            continue
        layers.append(nn.Linear(a, b))
        if hidden_layer:
            layers.append(make_activation(activation))
    return nn.Sequential(*layers)
