"""Linear bodies: with a Gaussian likelihood the VAE is probabilistic PCA.

The encoder body passes the flattened input through (the guide head's Linear layer
then makes q(z|x) an affine function of x); the decoder is one Linear layer,
decoder(z) = W z + b. With p(z) = N(0, I) and a fixed-scale Gaussian likelihood this
is the linear-Gaussian model of Tipping & Bishop (1999), whose exact posterior and
marginal likelihood are closed-form (Lucas et al. 2019 study the linear VAE).
``hidden`` and ``activation`` are ignored.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from . import DECODERS, ENCODERS
from .base import numel


@ENCODERS.register("linear")
class LinearEncoder(nn.Module):
    """Features = the flattened input."""

    def __init__(self, data_shape: Sequence[int], hidden=(), activation: str = "relu") -> None:
        super().__init__()
        self.data_shape = tuple(data_shape)
        self.out_features = numel(self.data_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)


@DECODERS.register("linear")
class LinearDecoder(nn.Module):
    """decoder(z) = W z + b, reshaped to ``(..., out_channels, *data_shape)``."""

    def __init__(
        self,
        latent_dim: int,
        data_shape: Sequence[int],
        out_channels: int = 1,
        hidden=(),
        activation: str = "relu",
    ) -> None:
        super().__init__()
        self.data_shape = tuple(data_shape)
        self.out_channels = int(out_channels)
        self.linear = nn.Linear(latent_dim, self.out_channels * numel(self.data_shape))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.linear(z).reshape(*z.shape[:-1], self.out_channels, *self.data_shape)
