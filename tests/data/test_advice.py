"""Advice logged about freshly loaded data (pyrovae.data.advice), each warning with a
case that must raise it and one that must not."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from pyrovae.data import load_data
from pyrovae.data.advice import (
    FEW_VALUES,
    SCALE_RATIO,
    advise,
    column_stats,
    label_warnings,
    scale_warning,
)
from pyrovae.errors import DataError

LOGGER = "pyrovae"


def _csv(path, header, rows) -> str:
    lines = [",".join(header)] if header else []
    lines += [",".join(f"{v:g}" for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def _infos(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]


@pytest.fixture
def breast_cancer(tmp_path):
    """scikit-learn's breast-cancer table as a CSV: 30 features and a 0/1 ``target``."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    path = tmp_path / "breast_cancer.csv"
    frame.to_csv(path, index=False)
    return str(path), list(frame.columns)


# -- column statistics: exact cases ------------------------------------------------


def test_column_stats_exact():
    x = torch.tensor([[0.0, 1.5, 2.0], [2.0, 2.5, 2.0], [4.0, 1.5, 2.0], [2.0, 2.5, 2.0]])
    s = column_stats(x)
    # column 0: values 0, 2, 4, 2 -> mean 2, variance (4 + 0 + 4 + 0) / 4 = 2
    torch.testing.assert_close(s.sd, torch.tensor([2.0**0.5, 0.5, 0.0], dtype=torch.float64))
    assert s.whole.tolist() == [True, False, True]
    assert s.distinct.tolist() == [3, 2, 1]
    assert s.categorical.tolist() == [True, False, True]


# -- the scale warning --------------------------------------------------------------


def _spread_table(ratio: float, n: int = 200) -> torch.Tensor:
    """Three continuous columns with standard deviations exactly ratio, 1 and 3, and a
    0/1 column (categorical, left out of the comparison)."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(n, 3, generator=g, dtype=torch.float64)
    z = (z - z.mean(0)) / z.std(0, correction=0)
    binary = (torch.arange(n) % 2).double().unsqueeze(1)
    return torch.cat([z * torch.tensor([ratio, 1.0, 3.0], dtype=torch.float64), binary], 1)


def test_scale_warning_names_the_widest_and_narrowest_columns():
    names = ["wide", "narrow", "middle", "flag"]
    message = scale_warning(_spread_table(1000.0), names)
    assert message is not None
    assert "a factor of 1e+03" in message
    assert "standard deviation 1e+03 of 'wide', 1 of 'narrow'" in message
    assert "--scale standardize" in message


def test_no_scale_warning_for_similar_scales():
    # just under the threshold: 0.99 * SCALE_RATIO between the extreme columns
    assert scale_warning(_spread_table(0.99 * SCALE_RATIO), ["a", "b", "c", "d"]) is None


def test_scale_warning_leaves_categorical_and_constant_columns_out():
    x = torch.cat([torch.randn(100, 2), torch.full((100, 1), 5.0)], 1)
    x[:, 1] = (torch.arange(100) % 3).float() * 1e4  # three whole values: categorical
    assert scale_warning(x) is None


def test_scale_warning_without_header_names_columns_by_index():
    message = scale_warning(_spread_table(1000.0))
    assert "of 'column 0', 1 of 'column 1'" in message


def test_breast_cancer_scale_and_label_warnings(breast_cancer, caplog):
    path, columns = breast_cancer
    data = load_data(path)
    sd = data.train.double().std(0, correction=0)
    features = [c for c in columns]  # the target is a column too
    continuous = [i for i, c in enumerate(features) if c != "target"]
    wide = features[continuous[int(sd[continuous].argmax())]]
    narrow = features[continuous[int(sd[continuous].argmin())]]
    with caplog.at_level(logging.INFO, logger=LOGGER):
        advise(data, likelihood=None, scale_given=False, val_fraction=0.1)
    warnings = _warnings(caplog)
    assert len(warnings) == 2, warnings
    assert f"of {wide!r}" in warnings[0] and f"of {narrow!r}" in warnings[0]
    assert wide == "worst area"
    assert warnings[1].startswith("column 'target' looks like a label or target (named 'target'")
    assert "--drop-columns target" in warnings[1] and "--label-column target" in warnings[1]
    assert _infos(caplog) == [
        "likelihood 'gaussian' chosen automatically: the data are neither binary nor images "
        "with values in [0, 1] (choose one with --likelihood)"
    ]


@pytest.mark.parametrize("how", ["scale given", "standardized"])
def test_no_scale_warning_when_scaling_is_chosen(breast_cancer, caplog, how):
    path, _ = breast_cancer
    scale = "standardize" if how == "standardized" else "none"
    data = load_data(path, scale=scale, drop_columns=["target"])
    with caplog.at_level(logging.INFO, logger=LOGGER):
        advice = advise(data, likelihood="gaussian-learned", scale_given=True)
    assert advice == [] and _warnings(caplog) == [] and _infos(caplog) == []


# -- label-like columns ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["target", "Label", "class", "y"])
def test_a_column_named_like_a_label(tmp_path, name):
    rng = np.random.default_rng(0)
    rows = np.c_[rng.normal(size=(40, 2)), rng.normal(size=40)]
    data = load_data(_csv(tmp_path / "t.csv", ["a", "b", name], rows), test_fraction=0)
    (message,) = label_warnings(data.train, data.feature_names)
    assert message.startswith(f"column {name!r} looks like a label or target (named {name!r})")


def test_a_categorical_column_among_continuous_ones(tmp_path):
    rng = np.random.default_rng(0)
    rows = np.c_[rng.normal(size=(60, 3)), rng.integers(0, 3, size=60)]
    data = load_data(_csv(tmp_path / "t.csv", None, rows), test_fraction=0)
    (message,) = label_warnings(data.train, data.feature_names)
    assert message.startswith(
        "column 'column 3' looks like a label or target (3 distinct whole-number values "
        "while the other columns are continuous)"
    )
    assert "--drop-columns 3" in message  # unnamed columns are named by index


def test_no_label_warning_for_a_table_of_whole_numbers(tmp_path):
    """Counts and categories everywhere: no column stands out as the label."""
    rng = np.random.default_rng(0)
    rows = np.c_[rng.integers(0, 4, size=(60, 5)), rng.poisson(30.0, size=(60, 2))]
    data = load_data(_csv(tmp_path / "t.csv", list("abcdefg"), rows), test_fraction=0)
    assert label_warnings(data.train, data.feature_names) == []


def test_no_label_warning_for_continuous_columns(tmp_path):
    rng = np.random.default_rng(0)
    data = load_data(
        _csv(tmp_path / "t.csv", ["height", "weight"], rng.normal(size=(40, 2))), test_fraction=0
    )
    assert label_warnings(data.train, data.feature_names) == []


def test_many_values_are_not_categorical(tmp_path):
    rng = np.random.default_rng(0)
    whole = rng.permutation(60) % (FEW_VALUES + 1)  # FEW_VALUES + 1 distinct values
    rows = np.c_[rng.normal(size=(60, 3)), whole]
    data = load_data(_csv(tmp_path / "t.csv", list("abcd"), rows), test_fraction=0)
    assert label_warnings(data.train, data.feature_names) == []


def test_images_get_no_table_advice(digits, caplog):
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert advise(digits, likelihood="bernoulli") == []
    assert caplog.records == []


# -- small data ----------------------------------------------------------------------


def test_an_empty_validation_split_says_what_early_stopping_watches(tmp_path, caplog):
    data = load_data(_csv(tmp_path / "one.csv", ["a", "b"], [[1.5, 2.0]]))
    assert (data.train.shape[0], data.val.shape[0]) == (1, 0)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        advice = advise(data, likelihood="gaussian", scale_given=True, val_fraction=0.1)
    assert advice == [
        "the validation split of "
        f"{data.name!r} is empty (0.1 of 1 rows rounds to 0): early stopping (--patience) "
        "and the best checkpoint follow the training loss"
    ]


def test_no_validation_asked_for_is_a_notice(tmp_path, caplog):
    rows = np.random.default_rng(0).normal(size=(20, 2))
    data = load_data(_csv(tmp_path / "t.csv", ["a", "b"], rows), val_fraction=0)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert advise(data, likelihood="gaussian", scale_given=True, val_fraction=0) == []
    assert _infos(caplog) == [
        f"the validation split of {data.name!r} is empty (val_fraction is 0): early stopping "
        "(--patience) and the best checkpoint follow the training loss"
    ]


def test_a_validation_split_gets_no_split_advice(tmp_path, caplog):
    rows = np.random.default_rng(0).normal(size=(20, 2))
    data = load_data(_csv(tmp_path / "t.csv", ["a", "b"], rows))
    assert data.val.shape[0] == 2
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert advise(data, likelihood="gaussian", scale_given=True) == []
    assert caplog.records == []


def test_no_training_rows_is_an_error(tmp_path):
    path = _csv(tmp_path / "two.csv", ["a", "b"], [[1.0, 2.0], [3.0, 4.5]])
    with pytest.raises(DataError) as info:
        load_data(path, test_fraction=0.5, val_fraction=0.9)
    assert str(info.value) == (
        f"data {path!r} has no rows left for training: 1 test and 1 validation rows take "
        "all 2 (lower --test-fraction / --val-fraction, or give more rows)"
    )


# -- the likelihood notice --------------------------------------------------------------


@pytest.mark.parametrize(
    "rows, scale, binarize, expected",
    [
        (
            [[0, 1], [1, 1], [1, 0]] * 4,
            "none",
            "none",
            "'bernoulli' chosen automatically: every value is 0 or 1",
        ),
        (
            [[0.2, 1.5], [3, 1], [1, 0]] * 4,
            "none",
            "none",
            "'gaussian' chosen automatically: "
            "the data are neither binary nor images with values in [0, 1]",
        ),
        (
            [[0.2, 0.5], [0.3, 1], [1, 0]] * 4,
            "none",
            "static",
            "'bernoulli' chosen automatically: the data are binarized (binarize=static)",
        ),
        (
            [[0, 1], [1, 1], [1, 0]] * 4,
            "standardize",
            "none",
            "'gaussian' chosen automatically: scale=standardize moved the data out of [0, 1]",
        ),
    ],
)
def test_the_likelihood_notice_says_why(tmp_path, caplog, rows, scale, binarize, expected):
    data = load_data(_csv(tmp_path / "t.csv", ["a", "b"], rows), scale=scale, binarize=binarize)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        advise(data, likelihood=None, scale_given=True)
    assert _infos(caplog) == [f"likelihood {expected} (choose one with --likelihood)"]


def test_no_notice_when_the_likelihood_is_named(tmp_path, caplog):
    data = load_data(_csv(tmp_path / "t.csv", ["a", "b"], [[0.2, 1.5], [3, 1], [1, 0]] * 4))
    with caplog.at_level(logging.INFO, logger=LOGGER):
        advise(data, likelihood="gaussian", scale_given=True)
    assert _infos(caplog) == []
