"""Static binarized MNIST (Larochelle & Murray 2011): 50,000 / 10,000 / 10,000 images.

The canonical files ``binarized_mnist_{train,valid,test}.amat`` hold one image per
line, 784 space-separated 0/1 values (row-major 28x28). pyrovae looks for them in
``ROOT/binarized_mnist/`` (or ``ROOT`` itself), downloads missing ones from their
canonical location when allowed and online, parses each once and caches a compact
bit-packed copy (``.amat.npz``, 98 bytes an image) next to it; later loads read the
cache. A missing test file (as in this project's shared data) leaves the test split
empty: evaluate on the validation split.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from . import DATASETS
from .datasets import RawData, default_root

URL = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/"
SPLITS = {
    "train": "binarized_mnist_train.amat",
    "valid": "binarized_mnist_valid.amat",
    "test": "binarized_mnist_test.amat",
}


def parse_amat(path: Path) -> np.ndarray:
    """Read an ``.amat`` file into a ``(N, 784)`` uint8 array of 0/1, checking every line."""
    try:
        data = np.loadtxt(path, dtype=np.uint8, ndmin=2)
    except ValueError as exc:
        raise DataError(f"cannot read {str(path)!r}: {str(exc).splitlines()[0]}") from None
    if data.shape[1] != 784 or data.max(initial=0) > 1:
        raise DataError(
            f"{str(path)!r} is not binarized MNIST: expected 784 values in {{0, 1}} "
            f"per line, got {data.shape[1]} values up to {data.max(initial=0)}"
        )
    return data


def load_amat(path: Path) -> np.ndarray:
    """The images of an ``.amat`` file, through its bit-packed cache."""
    cache = path.with_name(path.name + ".npz")
    if cache.exists() and cache.stat().st_mtime >= path.stat().st_mtime:
        with np.load(cache) as z:
            return np.unpackbits(z["bits"], axis=1, count=784)[: int(z["n"])]
    data = parse_amat(path)
    from ..atomic import atomic_write_bytes

    try:
        bits = np.packbits(data, axis=1)
        atomic_write_bytes(cache, lambda fh: np.savez(fh, bits=bits, n=data.shape[0]))
    except OSError:  # a read-only data folder: no cache, still correct
        pass
    return data


def _folder(root) -> Path:
    root = Path(root) if root is not None else default_root()
    return root / "binarized_mnist" if (root / "binarized_mnist").is_dir() else root


@DATASETS.register("binarized-mnist")
def load_binarized_mnist(root=None, download: bool = True) -> RawData:
    """Static binarized MNIST as (N, 1, 28, 28) binary images; official train/valid/test."""
    folder = _folder(root)
    arrays = {}
    for split, name in SPLITS.items():
        path = folder / name
        if not path.exists() and download and split != "test":
            try:
                folder.mkdir(parents=True, exist_ok=True)
                urllib.request.urlretrieve(URL + name, path)  # noqa: S310 - fixed https/http URL
            except Exception as exc:  # offline
                path.unlink(missing_ok=True)
                raise DataError(
                    f"{name} is not in {folder} and could not be downloaded ({exc}); put the "
                    f"binarized MNIST .amat files there"
                ) from None
        if not path.exists():
            if split == "test":
                arrays[split] = np.zeros((0, 784), dtype=np.uint8)
                continue
            raise DataError(
                f"{name} is not in {folder}; put the binarized MNIST .amat files "
                "there (or allow downloading)"
            )
        arrays[split] = load_amat(path)

    def images(a):
        return torch.from_numpy(a.astype(np.float32)).reshape(-1, 1, 28, 28)

    return RawData(
        x=images(arrays["train"]),
        x_val=images(arrays["valid"]),
        x_test=images(arrays["test"]),
        is_image=True,
        likelihood="bernoulli",
    )
