r"""Encoder bodies that read partly observed rows: ``forward(x, mask) -> features``.

A model trained with missing entries (``--missing mask`` / ``--mask-rate``) needs an
encoder that knows which entries are missing. Registry :data:`MASK_ENCODERS`:

* ``concat`` (default): the architecture's own encoder (``--net``) reads the zero-filled
  x and the mask, concatenated along the first data dimension (as extra channels of an
  image); the zero-imputation encoder of Nazabal et al. (2020) and the baseline of Ma et
  al. (2019).
* ``set``: the permutation-invariant set encoder of the Partial VAE (Ma et al. 2019,
  "PNP"): each observed entry d becomes s_d = [x_d e_d, e_d] with a learned embedding
  e_d of its feature, a shared network h maps it to h(s_d), the sum over the observed
  entries c = sum_d m_d h(s_d) pools them (invariant to their order, and the same
  whatever the number of missing entries), and an MLP of widths ``hidden`` maps c to the
  features. It ignores ``--net``: every row is a set of (feature, value) pairs.

References
----------
Ma, Tschiatschek, Palla, Hernandez-Lobato, Nowozin & Zhang (2019), EDDI: efficient dynamic
discovery of high-value information with partial VAE, ICML.
Nazabal, Olmos, Ghahramani & Valera (2020), Handling incomplete heterogeneous data using
VAEs, Pattern Recognition.
Zaheer, Kottur, Ravanbakhsh, Poczos, Salakhutdinov & Smola (2017), Deep sets, NeurIPS.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import Registry
from .base import check_hidden, make_activation, mlp, numel

MASK_ENCODERS: Registry = Registry("mask encoder")


def encoder_shape(data_shape: Sequence[int]) -> tuple[int, ...]:
    """The row shape the ``concat`` encoder reads: x and the mask stacked along the first
    data dimension (as channels of an image)."""
    data_shape = tuple(int(s) for s in data_shape)
    if len(data_shape) == 2:
        return (2, *data_shape)
    return (2 * data_shape[0], *data_shape[1:])


def encoder_input(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The zero-filled ``x`` (rows ``(B, *data_shape)``) and ``mask`` (``None``: every
    entry observed) concatenated as :func:`encoder_shape` describes."""
    if mask is None:
        mask = torch.ones_like(x, dtype=torch.bool)
    filled = torch.where(mask, x, x.new_zeros(()))
    m = mask.to(x.dtype).expand_as(filled)
    if x.dim() == 3:
        return torch.stack([filled, m], dim=1)
    return torch.cat([filled, m], dim=1)


@MASK_ENCODERS.register("concat")
class ConcatMaskEncoder(nn.Module):
    """The ``net`` encoder over the zero-filled x concatenated with the mask."""

    def __init__(
        self,
        data_shape: Sequence[int],
        net: str = "mlp",
        hidden: Sequence[int] = (400,),
        activation: str = "relu",
    ) -> None:
        from . import ENCODERS

        super().__init__()
        self.body = ENCODERS.get(net)(
            encoder_shape(data_shape), hidden=hidden, activation=activation
        )
        self.out_features = self.body.out_features

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.body(encoder_input(x, mask))


@MASK_ENCODERS.register("set")
class SetMaskEncoder(nn.Module):
    """The Partial VAE's permutation-invariant set encoder (module docstring).

    Parameters
    ----------
    data_shape : tuple of int
        Shape of one row (flattened into features).
    net : str
        Ignored (the rows are sets of (feature, value) pairs).
    hidden : sequence of int
        Widths of the MLP after the pooling; the last one is ``out_features``.
    activation : str
        Hidden activation.
    embed_dim : int
        Size of each feature's learned embedding e_d.
    width : int
        Width of the shared per-entry network h.
    """

    def __init__(
        self,
        data_shape: Sequence[int],
        net: str = "mlp",
        hidden: Sequence[int] = (400,),
        activation: str = "relu",
        embed_dim: int = 16,
        width: int = 64,
    ) -> None:
        super().__init__()
        hidden = check_hidden(hidden)
        if int(embed_dim) < 1 or int(width) < 1:
            raise ConfigError("the set encoder's embed_dim and width must be positive")
        self.n_features = numel(data_shape)
        self.embedding = nn.Parameter(0.1 * torch.randn(self.n_features, int(embed_dim)))
        self.entry = nn.Sequential(
            nn.Linear(2 * int(embed_dim), int(width)),
            make_activation(activation),
            nn.Linear(int(width), int(width)),
            make_activation(activation),
        )
        self.head = mlp((int(width), *hidden), activation, final_activation=True)
        self.out_features = hidden[-1]

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        rows = x.shape[0]
        x = x.reshape(rows, self.n_features)
        if mask is None:
            m = torch.ones_like(x)
        else:
            keep = mask.reshape(rows, self.n_features)
            m = keep.to(x.dtype)
            x = torch.where(keep, x, x.new_zeros(()))  # missing values never enter
        e = self.embedding.expand(rows, -1, -1)  # (B, D, K)
        s = torch.cat([x.unsqueeze(-1) * e, e], dim=-1)  # (B, D, 2K)
        pooled = (self.entry(s) * m.unsqueeze(-1)).sum(1)  # (B, width)
        return self.head(pooled)
