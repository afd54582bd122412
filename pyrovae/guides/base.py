"""Base class of amortized guide heads."""

from __future__ import annotations

import torch
from pyro.distributions import Distribution
from torch import nn

from ..errors import ConfigError


class GuideHead(nn.Module):
    """Maps encoder features to q(z|x).

    Parameters
    ----------
    in_features : int
        Width of the encoder body's output.
    latent_dim : int
        Dimension of ``z``.
    """

    def __init__(self, in_features: int, latent_dim: int) -> None:
        super().__init__()
        if int(latent_dim) <= 0:
            raise ConfigError(f"latent_dim must be a positive integer; got {latent_dim}")
        self.in_features = int(in_features)
        self.latent_dim = int(latent_dim)

    def forward(self, features: torch.Tensor) -> Distribution:  # pragma: no cover
        raise NotImplementedError
