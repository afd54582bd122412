"""as_data_tensor: every problem with user data is one clear line, and good data passes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pyrovae.data import as_data_tensor
from pyrovae.errors import DataError, PyrovaeError


def _with(value, at=(3, 1)):
    x = np.random.default_rng(0).random((10, 4))
    x[at] = value
    return x


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (_with(np.nan), r"X contains 1 NaN or Inf value\(s\), first at index \(3, 1\)"),
        (_with(np.inf), r"X contains 1 NaN or Inf value\(s\)"),
        (_with(-np.inf, at=(0, 0)), r"first at index \(0, 0\)"),
        (torch.tensor(_with(np.nan)), "NaN or Inf"),
        (np.arange(5.0), r"at least 2 dimensions .* got shape \(5,\)"),
        (np.float64(3.0), r"at least 2 dimensions .* got shape \(\)"),
        (np.zeros((0, 4)), r"X is empty \(0 rows\)"),
        ([], r"got shape \(0,\)"),
        (np.zeros((6, 0)), r"X has no features \(shape \(6, 0\)\)"),
        (np.array([["a", "b"], ["c", "d"]]), "X must be numeric; got dtype <U1"),
        (np.array([[1.0, None], [2.0, 3.0]], dtype=object), "X must be numeric; got dtype object"),
        ("some text", "X must be numeric"),
        (None, "X must be numeric"),
        ([[1.0, 2.0], [3.0]], "X cannot be read as an array"),
        (np.ones((3, 2), dtype=complex), "X must be real-valued"),
    ],
    ids=[
        "nan",
        "inf",
        "-inf",
        "nan-tensor",
        "1d",
        "0d",
        "no-rows",
        "empty-list",
        "no-features",
        "strings",
        "object",
        "str",
        "none",
        "ragged",
        "complex",
    ],
)
def test_bad_data_is_one_line(data, expected):
    with pytest.raises(DataError, match=expected) as info:
        as_data_tensor(data, name="X")
    assert "\n" not in str(info.value)
    assert isinstance(info.value, PyrovaeError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "data",
    [
        np.ones((4, 3), dtype=np.float64),
        np.ones((4, 3), dtype=np.int64),
        np.ones((4, 3), dtype=np.uint8),
        np.ones((4, 3), dtype=bool),
        np.ones((4, 3), dtype=np.float16),
        [[1, 1, 1]] * 4,
        torch.ones(4, 3, dtype=torch.float64, requires_grad=True),
        torch.ones(4, 3, dtype=torch.int32),
    ],
    ids=["f64", "i64", "u8", "bool", "f16", "list", "tensor-grad", "tensor-int"],
)
def test_good_data_becomes_float32(data):
    t = as_data_tensor(data)
    assert t.dtype == torch.float32 and t.shape == (4, 3) and not t.requires_grad
    assert torch.all(t == 1)


def test_images_keep_their_shape():
    t = as_data_tensor(np.zeros((5, 1, 8, 8)))
    assert t.shape == (5, 1, 8, 8)


def test_min_dims_and_name_are_used():
    with pytest.raises(DataError, match=r"^my data must have at least 3 dimensions"):
        as_data_tensor(np.zeros((4, 2)), name="my data", min_dims=3)


def test_reports_how_many_values_are_bad():
    x = np.zeros((5, 5))
    x[1, 2] = x[4, 4] = np.nan
    x[0, 3] = np.inf
    with pytest.raises(DataError, match=r"3 NaN or Inf value\(s\), first at index \(0, 3\)"):
        as_data_tensor(x)
