"""Minibatches (:class:`~pyrovae.data.batch.Batch`) from an in-memory tensor (or a data
set read on demand).

A ``torch.utils.data.DataLoader`` over a ``TensorDataset`` indexes and collates
one row at a time; slicing a shuffled index of the whole tensor gives the same
minibatches at a fraction of the cost, which matters for small VAEs. ``x`` only
needs ``x.shape[0]`` and ``x[index_tensor]`` / ``x[slice]``, so a
:class:`~pyrovae.data.stream.MemmapArray` is batched the same way, each minibatch
read from its file when it is needed. Labels and an observation mask, when the data
set has them, are sliced with the same rows; every batch records the data set's size.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .batch import Batch, as_batch


class TensorBatches:
    """Iterate over ``x`` in minibatches, each a :class:`~pyrovae.data.batch.Batch` with
    ``n = N``.

    Parameters
    ----------
    x : Tensor, MemmapArray or Batch
        Data ``(N, *data_shape)``, or a batch holding the whole data set with its
        labels and mask.
    batch_size : int
        Rows per batch (the last batch may be smaller unless ``drop_last``).
    shuffle : bool
        Reshuffle at every pass, with ``generator``.
    generator : torch.Generator, optional
        Source of the shuffles (its state is saved in checkpoints).
    """

    def __init__(
        self,
        x: torch.Tensor | Batch,
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
    ) -> None:
        self.data = as_batch(x)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.generator = generator
        self.drop_last = drop_last

    def __len__(self) -> int:
        n = len(self.data)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        data = self.data
        n = len(data)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else None
        for i in range(len(self)):
            sl = slice(i * self.batch_size, min((i + 1) * self.batch_size, n))
            yield data[order[sl]] if order is not None else data[sl]
