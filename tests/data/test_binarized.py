"""Static binarized MNIST: the .amat parser, its bit-packed cache, missing splits."""

from __future__ import annotations

import os

import numpy as np
import pytest

from pyrovae.data import load_data
from pyrovae.data.binarized import load_amat
from pyrovae.errors import DataError


def _write(path, rows):
    path.write_text("\n".join(" ".join(str(int(v)) for v in r) for r in rows) + "\n")


@pytest.fixture
def amat_folder(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "binarized_mnist"
    folder.mkdir()
    data = {s: rng.integers(0, 2, (n, 784)) for s, n in (("train", 12), ("valid", 5))}
    for split, rows in data.items():
        _write(folder / f"binarized_mnist_{split}.amat", rows)
    return tmp_path, data


def test_parse_cache_and_splits(amat_folder):
    root, data = amat_folder
    d = load_data("binarized-mnist", root=root, download=False)
    assert d.train.shape == (12, 1, 28, 28) and d.val.shape == (5, 1, 28, 28)
    assert d.test.shape[0] == 0  # no test file: an empty test split
    np.testing.assert_array_equal(d.val.reshape(5, 784).numpy(), data["valid"])
    assert sorted(d.train.reshape(12, 784).sum(1).tolist()) == sorted(data["train"].sum(1))
    cache = root / "binarized_mnist" / "binarized_mnist_train.amat.npz"
    assert cache.exists() and cache.stat().st_size < 12 * 100 + 600
    # the cache is read (the text is no longer parsed) ...
    amat = root / "binarized_mnist" / "binarized_mnist_train.amat"
    before = load_amat(amat)
    os.utime(cache, (amat.stat().st_mtime + 10, amat.stat().st_mtime + 10))
    amat.write_text("garbage\n")
    os.utime(amat, (amat.stat().st_mtime - 100, amat.stat().st_mtime - 100))
    np.testing.assert_array_equal(load_amat(amat), before)
    # ... until the text file is newer than its cache
    os.utime(amat, (cache.stat().st_mtime + 10, cache.stat().st_mtime + 10))
    with pytest.raises(DataError, match="cannot read"):
        load_amat(amat)


def test_wrong_width_and_missing_files(tmp_path):
    folder = tmp_path / "binarized_mnist"
    folder.mkdir()
    _write(folder / "binarized_mnist_train.amat", [[0, 1, 1]])
    _write(folder / "binarized_mnist_valid.amat", [[0] * 784])
    with pytest.raises(DataError, match="expected 784 values"):
        load_data("binarized-mnist", root=tmp_path, download=False)
    with pytest.raises(DataError, match="put the binarized MNIST .amat files there"):
        load_data("binarized-mnist", root=tmp_path / "nowhere", download=False)
