"""Plain ``nn.Module`` encoder and decoder bodies.

An *encoder body* maps a batch ``x`` of shape ``(B, *data_shape)`` to features
of shape ``(B, out_features)``; the guide head turns features into q(z|x).
A *decoder body* maps ``z`` of shape ``(..., latent_dim)`` to raw likelihood
parameters of shape ``(..., out_channels, *data_shape)``; the likelihood turns
those into p(x|z). Bodies know nothing about Pyro.

Registries: :data:`ENCODERS` and :data:`DECODERS`, keyed by architecture
name (``"mlp"``, ``"gated"``, ``"conv"``, ``"linear"``, ``"heston-pricer"``), and
:data:`MASK_ENCODERS`, the encoders of partly observed rows (``forward(x, mask)``;
:mod:`.masked`).

Extra options of an architecture (``net_options``, ``--net-options KEY=VALUE``) are
keyword arguments of both its encoder and decoder. A body that decodes only data of
its own shape (the pricer decoder of :mod:`~pyrovae.nets.heston`) says so with the
class attribute ``any_data_shape = False`` and gives a small case with ``example()``;
one whose options come from the run's data has ``options_from_run(config)``.
"""

from __future__ import annotations

from ..registry import Registry
from .base import ACTIVATIONS, make_activation

ENCODERS: Registry = Registry("encoder")
DECODERS: Registry = Registry("decoder")

from .conv import ConvDecoder, ConvEncoder  # noqa: E402
from .heston import HestonPricerDecoder, HestonPricerEncoder  # noqa: E402
from .linear import LinearDecoder, LinearEncoder  # noqa: E402
from .masked import MASK_ENCODERS, ConcatMaskEncoder, SetMaskEncoder  # noqa: E402
from .mlp import GatedMLPDecoder, GatedMLPEncoder, MLPDecoder, MLPEncoder  # noqa: E402

__all__ = [
    "ACTIVATIONS",
    "DECODERS",
    "ENCODERS",
    "MASK_ENCODERS",
    "ConcatMaskEncoder",
    "SetMaskEncoder",
    "ConvDecoder",
    "ConvEncoder",
    "GatedMLPDecoder",
    "GatedMLPEncoder",
    "HestonPricerDecoder",
    "HestonPricerEncoder",
    "LinearDecoder",
    "LinearEncoder",
    "MLPDecoder",
    "MLPEncoder",
    "make_activation",
]
