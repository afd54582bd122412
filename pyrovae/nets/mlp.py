"""Multilayer-perceptron encoder and decoder bodies (Kingma & Welling 2014, App. C)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from . import DECODERS, ENCODERS
from .base import check_hidden, mlp, numel


@ENCODERS.register("mlp")
class MLPEncoder(nn.Module):
    """Flatten ``x`` and apply Linear + activation layers.

    Parameters
    ----------
    data_shape : tuple of int
        Shape of one datum.
    hidden : sequence of int
        Hidden layer widths; the last one is ``out_features``.
    activation : str
        Name in :data:`~pyrovae.nets.ACTIVATIONS`.
    """

    def __init__(
        self, data_shape: Sequence[int], hidden: Sequence[int] = (400,), activation: str = "relu"
    ) -> None:
        super().__init__()
        hidden = check_hidden(hidden)
        self.data_shape = tuple(data_shape)
        self.out_features = hidden[-1]
        self.net = mlp((numel(self.data_shape), *hidden), activation, final_activation=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(x.shape[0], -1))


@DECODERS.register("mlp")
class MLPDecoder(nn.Module):
    """Map ``z`` through Linear + activation layers to likelihood parameters.

    Parameters
    ----------
    latent_dim : int
        Size of z.
    data_shape : tuple of int
        Shape of one datum.
    out_channels : int
        Number of raw parameters per data dimension (the likelihood's
        ``param_channels``).
    hidden : sequence of int
        Hidden layer widths, listed from the data side (mirrors the encoder).
    activation : str
        Name in :data:`~pyrovae.nets.ACTIVATIONS`.
    """

    def __init__(
        self,
        latent_dim: int,
        data_shape: Sequence[int],
        out_channels: int = 1,
        hidden: Sequence[int] = (400,),
        activation: str = "relu",
    ) -> None:
        super().__init__()
        hidden = check_hidden(hidden)
        self.data_shape = tuple(data_shape)
        self.out_channels = int(out_channels)
        sizes = (latent_dim, *reversed(hidden), self.out_channels * numel(self.data_shape))
        self.net = mlp(sizes, activation, final_activation=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.net(z)
        return out.reshape(*z.shape[:-1], self.out_channels, *self.data_shape)
