r"""The minibatch that training, the objectives and every model family's programs take.

A :class:`Batch` holds the data rows ``x`` of one minibatch, optional labels or
conditions ``y`` (one entry per row), an optional observation mask (``True`` where an
entry of ``x`` was observed; same shape as ``x``) and the size ``n`` of the data set
the minibatch was drawn from. :class:`~pyrovae.data.TensorBatches` yields batches; the
trainer passes them to the objective, which passes them to the model and the guide::

    objective(module.model, module.guide, batch, beta=beta)
        -> module.model(batch, beta=beta), module.guide(batch, beta=beta)

A program (``model`` / ``guide``) turns its argument into a batch with
:func:`as_batch`, the one conversion: a bare tensor becomes ``Batch(x)``, the whole
data set (``n = len(x)``), so evaluation code and Pyro's own inference (``NUTS``,
``Trace_ELBO().differentiable_loss(model, guide, x)``) may pass a tensor.

Scaling against minibatches
---------------------------
pyrovae's minibatch loss is the objective summed over the ``B = len(batch)`` rows of
the data plate, ``pyro.plate(DATA_PLATE, len(batch))`` (no subsampling scale), and the
training step divides it by ``B``: the per-data-point loss

.. math::  L = \frac1B \sum_{n \in \mathcal B} \ell_n ,

whose expectation over minibatches is the full-data objective divided by ``N``
(``metrics.csv`` reports per-data-point values in this sense). A *global* latent site
(outside the data plate, such as Bayesian decoder weights :math:`\theta`) appears once
in the full-data ELBO, :math:`\sum_n \ell_n + \mathrm{KL}(q(\theta) \| p(\theta))`.
To keep the per-data-point convention, a family scales its global sites by
:attr:`Batch.global_scale` ``= B / N`` (``poutine.scale(scale=batch.global_scale)``
around them in the model and the guide), so that

.. math::  \mathbb E\,[L] = \frac1N \Big( \sum_{n=1}^N \ell_n
           + \mathrm{KL}(q(\theta) \| p(\theta)) \Big) .

(Pyro's alternative, ``pyro.plate(DATA_PLATE, size=batch.n, subsample=...)``, scales
the local sites by ``N / B`` and leaves the global ones alone; that loss is ``N`` times
the one above, and would have to be divided by ``N`` instead of ``B``. pyrovae's data
plates have size ``B``: use the explicit scale.) Under data-parallel training each
rank holds a slice of ``B_r`` rows of the global minibatch and keeps ``n = N``; its
global sites carry ``B_r / N`` and the ranks' gradients are averaged with weight
``W / B`` each (:mod:`pyrovae.training.distributed`), which sums to the same
``\mathrm{KL} / N``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import DataError


def _rows(t: Any) -> int:
    return int(t.shape[0])


@dataclass(frozen=True)
class Batch:
    """One minibatch: data, optional labels or conditions, optional observation mask,
    and the size of the data set it comes from (see the module docstring).

    Parameters
    ----------
    x : Tensor
        Data rows ``(B, *data_shape)`` (or a :class:`~pyrovae.data.MemmapArray` for a
        whole data set read on demand: slicing it gives tensors).
    y : Tensor, optional
        Labels or conditions, one entry per row ``(B, ...)``; families that do not
        condition on them ignore them.
    mask : Tensor, optional
        ``bool`` of ``x``'s shape, ``True`` where the entry was observed; ``None``
        when every entry was.
    n : int, optional
        Rows of the data set this batch is drawn from (default: ``B``).
    """

    x: Any
    y: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    n: int = None  # type: ignore[assignment]  # set to len(x) when not given

    def __post_init__(self) -> None:
        rows = _rows(self.x)
        if self.n is None:
            object.__setattr__(self, "n", rows)
        if self.y is not None and _rows(self.y) != rows:
            raise DataError(f"y has {_rows(self.y)} rows but x has {rows}")
        if self.mask is not None:
            if tuple(self.mask.shape) != tuple(self.x.shape):
                raise DataError(
                    f"mask has shape {tuple(self.mask.shape)} but x has {tuple(self.x.shape)}"
                )
            if self.mask.dtype != torch.bool:
                raise DataError(f"mask must be bool; got {self.mask.dtype}")

    def __len__(self) -> int:
        return _rows(self.x)

    def __getitem__(self, index) -> Batch:
        """The rows ``index`` (a slice or an index tensor) of every field; ``n`` is kept."""
        return Batch(
            self.x[index],
            None if self.y is None else self.y[index],
            None if self.mask is None else self.mask[index],
            self.n,
        )

    @property
    def global_scale(self) -> float:
        """``B / N``: the scale of global latent sites (module docstring)."""
        return len(self) / self.n

    def to(self, device, non_blocking: bool = False) -> Batch:
        """Every tensor on ``device`` (this batch itself when they are already there)."""

        def move(t):
            return None if t is None else t.to(device, non_blocking=non_blocking)

        x, y, mask = move(self.x), move(self.y), move(self.mask)
        if x is self.x and y is self.y and mask is self.mask:
            return self
        return Batch(x, y, mask, self.n)

    def replace(self, **changes: Any) -> Batch:
        """A copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)


def as_batch(data) -> Batch:
    """``data`` if it is a :class:`Batch`, else ``Batch(data)``: the whole data set."""
    if isinstance(data, Batch):
        return data
    return Batch(data)
