"""Minibatches from an in-memory tensor (or a data set read on demand).

A ``torch.utils.data.DataLoader`` over a ``TensorDataset`` indexes and collates
one row at a time; slicing a shuffled index of the whole tensor gives the same
minibatches at a fraction of the cost, which matters for small VAEs. ``x`` only
needs ``x.shape[0]`` and ``x[index_tensor]`` / ``x[slice]``, so a
:class:`~pyrovae.data.stream.MemmapArray` is batched the same way, each minibatch
read from its file when it is needed.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


class TensorBatches:
    """Iterate over ``x`` in minibatches.

    Parameters
    ----------
    x : Tensor or MemmapArray
        Data ``(N, *data_shape)``.
    batch_size : int
        Rows per batch (the last batch may be smaller unless ``drop_last``).
    shuffle : bool
        Reshuffle at every pass, with ``generator``.
    generator : torch.Generator, optional
        Source of the shuffles (its state is saved in checkpoints).
    """

    def __init__(
        self,
        x: torch.Tensor,
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
    ) -> None:
        self.x = x
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.generator = generator
        self.drop_last = drop_last

    def __len__(self) -> int:
        n = self.x.shape[0]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[torch.Tensor]:
        n = self.x.shape[0]
        order = torch.randperm(n, generator=self.generator) if self.shuffle else None
        for i in range(len(self)):
            sl = slice(i * self.batch_size, min((i + 1) * self.batch_size, n))
            batch = self.x[order[sl]] if order is not None else self.x[sl]
            yield batch
