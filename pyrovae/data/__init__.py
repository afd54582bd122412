"""Datasets, validation, scaling and minibatching.

:func:`load_data` turns a data spec (a registered dataset name such as
``"digits"`` or ``"mnist"``, or a path to ``.npy`` / ``.npz`` / ``.csv``) into
a :class:`DataSplits` of float tensors ``(N, *data_shape)``; :class:`TensorBatches`
cuts them into minibatches (:class:`Batch`: data, optional labels and mask, and the
data set's size), the argument of every model family's programs. Registry of named
datasets: :data:`DATASETS`; of scalers: :data:`SCALERS`. :class:`MemmapArray`
streams a ``.npy`` file larger than memory (``load_data(..., stream=True)``, or
``VAE().fit(MemmapArray(path))``).
"""

from __future__ import annotations

from ..registry import Registry

DATASETS: Registry = Registry("dataset")
SCALERS: Registry = Registry("scaling")

from . import binarize, binarized, heston, shapes  # noqa: E402,F401  (registries)
from .batch import Batch, as_batch  # noqa: E402
from .batches import TensorBatches  # noqa: E402
from .datasets import DataSplits, RawData, load_data  # noqa: E402
from .scaling import Scaler  # noqa: E402
from .stream import MemmapArray  # noqa: E402
from .validation import as_data_tensor  # noqa: E402

__all__ = [
    "DATASETS",
    "Batch",
    "SCALERS",
    "DataSplits",
    "MemmapArray",
    "RawData",
    "Scaler",
    "TensorBatches",
    "as_batch",
    "as_data_tensor",
    "load_data",
]
