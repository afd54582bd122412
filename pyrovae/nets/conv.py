"""Convolutional encoder and decoder bodies for images ``(C, H, W)``.

Two stride-2 convolutions halve the spatial size twice (as in DCGAN-style VAE
encoders, Radford et al. 2016); the decoder mirrors them with transposed
convolutions. Height and width must be divisible by 4 (8x8 digits, 28x28 MNIST).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from . import DECODERS, ENCODERS
from .base import check_hidden, make_activation, mlp

_CHANNELS = (32, 64)


def _image_shape(data_shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in data_shape)
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3 or shape[1] % 4 or shape[2] % 4:
        raise ConfigError(
            "conv networks need images of shape (C, H, W) with H and W divisible by 4; "
            f"got data of shape {tuple(data_shape)} (use --net mlp for tabular data)"
        )
    return shape  # type: ignore[return-value]


@ENCODERS.register("conv")
class ConvEncoder(nn.Module):
    """Two stride-2 convolutions, then Linear layers of widths ``hidden``."""

    def __init__(
        self, data_shape: Sequence[int], hidden: Sequence[int] = (400,), activation: str = "relu"
    ) -> None:
        super().__init__()
        hidden = check_hidden(hidden)
        self.data_shape = tuple(data_shape)
        c, h, w = _image_shape(data_shape)
        self.image_shape = (c, h, w)
        c1, c2 = _CHANNELS
        self.conv = nn.Sequential(
            nn.Conv2d(c, c1, 4, 2, 1),
            make_activation(activation),
            nn.Conv2d(c1, c2, 4, 2, 1),
            make_activation(activation),
            nn.Flatten(),
        )
        self.fc = mlp((c2 * (h // 4) * (w // 4), *hidden), activation, final_activation=True)
        self.out_features = hidden[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x.reshape(x.shape[0], *self.image_shape)))


@DECODERS.register("conv")
class ConvDecoder(nn.Module):
    """Linear layers, then two stride-2 transposed convolutions to full size."""

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
        c, h, w = _image_shape(data_shape)
        c1, c2 = _CHANNELS
        self._grid = (c2, h // 4, w // 4)
        self.fc = mlp((latent_dim, *reversed(hidden), c2 * (h // 4) * (w // 4)), activation, True)
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(c2, c1, 4, 2, 1),
            make_activation(activation),
            nn.ConvTranspose2d(c1, c * self.out_channels, 4, 2, 1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        batch = z.shape[:-1]
        hid = self.fc(z.reshape(-1, z.shape[-1])).reshape(-1, *self._grid)
        out = self.deconv(hid)
        # (N, C*K, H, W) -> (..., K, C, H, W) -> (..., K, *data_shape)
        out = out.reshape(*batch, -1, self.out_channels, *out.shape[-2:]).transpose(-4, -3)
        return out.reshape(*batch, self.out_channels, *self.data_shape)
