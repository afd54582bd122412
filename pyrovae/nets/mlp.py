"""Multilayer-perceptron encoder and decoder bodies.

``"mlp"``: Linear + activation layers (Kingma & Welling 2014, App. C).
``"gated"``: the same widths with gated linear units, ``h = (W x + b) * sigmoid(V x + c)``
(Dauphin et al. 2017), the "GatedDense" MLPs of Tomczak & Welling (2018, VampPrior),
whose MNIST results use them; ``activation`` is ignored there (the gate is the
non-linearity).

References
----------
Kingma, D. P. & Welling, M. (2014). Auto-encoding variational Bayes. ICLR.
Dauphin, Y. N., Fan, A., Auli, M. & Grangier, D. (2017). Language modeling with gated
convolutional networks. ICML.
Tomczak, J. M. & Welling, M. (2018). VAE with a VampPrior. AISTATS.
"""

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

    #: gated linear units instead of Linear + activation (see :class:`GatedMLPEncoder`)
    gated = False

    def __init__(
        self, data_shape: Sequence[int], hidden: Sequence[int] = (400,), activation: str = "relu"
    ) -> None:
        super().__init__()
        hidden = check_hidden(hidden)
        self.data_shape = tuple(data_shape)
        self.out_features = hidden[-1]
        sizes = (numel(self.data_shape), *hidden)
        self.net = mlp(sizes, activation, final_activation=True, gated=self.gated)

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

    gated = False

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
        self.net = mlp(sizes, activation, final_activation=False, gated=self.gated)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.net(z)
        return out.reshape(*z.shape[:-1], self.out_channels, *self.data_shape)


@ENCODERS.register("gated")
class GatedMLPEncoder(MLPEncoder):
    """:class:`MLPEncoder` whose layers are gated linear units
    (:class:`~pyrovae.nets.base.GatedLinear`); ``activation`` is ignored."""

    gated = True


@DECODERS.register("gated")
class GatedMLPDecoder(MLPDecoder):
    """:class:`MLPDecoder` whose hidden layers are gated linear units; the output layer
    is a plain Linear map to the likelihood parameters. ``activation`` is ignored."""

    gated = True
