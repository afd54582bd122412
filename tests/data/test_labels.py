"""Semi-supervised label draws (--n-labels / --label-fraction): stratified by class,
reproducible from the split seed, the rest -1; impossible requests refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pyrovae.data import load_data
from pyrovae.data.labels import allocate, keep_labels, labels_to_keep
from pyrovae.errors import DataError


@pytest.mark.parametrize(
    "counts, n, expected",
    [
        ([10, 10, 10], 3, [1, 1, 1]),
        ([10, 10, 10], 7, [3, 2, 2]),  # largest remainder: ties go to the first class
        ([80, 15, 5], 10, [8, 1, 1]),  # 8 / 1.5 / 0.5: the 0.5 is raised to 1
        ([98, 1, 1], 3, [1, 1, 1]),  # the minimum of 1 per class wins over proportions
        ([2, 3], 5, [2, 3]),  # every row
    ],
)
def test_allocation_is_proportional_with_one_per_class(counts, n, expected):
    take = allocate(np.array(counts), n)
    assert take.tolist() == expected and take.sum() == n


def test_keep_labels_draws_within_each_class_from_the_seed():
    y = torch.arange(60) % 3
    kept = keep_labels(y, 9, seed=4)
    assert (kept >= 0).sum() == 9
    assert torch.equal(torch.bincount(kept[kept >= 0]), torch.tensor([3, 3, 3]))
    assert torch.equal(kept[kept >= 0], y[kept >= 0])  # kept labels are the true ones
    assert set(kept[kept < 0].tolist()) == {-1}
    assert torch.equal(keep_labels(y, 9, seed=4), kept)
    assert not torch.equal(keep_labels(y, 9, seed=5), kept)


def test_digits_with_ten_labels_have_one_per_class_and_unlabelled_validation():
    full = load_data("digits")
    d = load_data("digits", n_labels=10)
    assert torch.equal(d.train, full.train)  # the split is unchanged
    labelled = d.y_train >= 0
    assert int(labelled.sum()) == 10
    assert sorted(d.y_train[labelled].tolist()) == list(range(10))
    assert torch.equal(d.y_train[labelled], full.y_train[labelled])
    assert (d.y_val == -1).all()
    assert torch.equal(d.y_test, full.y_test)
    frac = load_data("digits", label_fraction=0.1)
    assert int((frac.y_train >= 0).sum()) == round(0.1 * len(full.y_train))
    other = load_data("digits", n_labels=10, split_seed=1)
    assert not torch.equal(other.y_train >= 0, labelled)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n_labels=5), "--n-labels 5 is fewer than the 10 classes: each class needs a label"),
        (dict(n_labels=99999), "--n-labels 99999 is more than the 1455 labelled training rows"),
        (dict(n_labels=10, label_fraction=0.1), "give --n-labels or --label-fraction, not both"),
    ],
)
def test_impossible_label_counts_are_refused(kwargs, message):
    with pytest.raises(DataError, match=f"^{message}$"):
        load_data("digits", **kwargs)


def test_labels_are_needed(tabular, tmp_path):
    np.save(tmp_path / "x.npy", tabular.numpy())
    with pytest.raises(DataError, match="^--n-labels / --label-fraction need labelled data"):
        load_data(str(tmp_path / "x.npy"), n_labels=10)


def test_no_request_keeps_every_label():
    assert labels_to_keep(torch.arange(4), None, None) is None
