"""Choosing the columns of a data file: features, dropped columns, a label column and
condition columns.

A column is named by its header name (a CSV header row, or the ``feature_names``
array of a ``.npz`` archive) or by its 0-based index (negative indices count from the
end). :func:`choose_columns` turns the ``columns``, ``drop_columns``, ``label_column``
and ``condition_columns`` options into column indices of the file, and
:func:`encode_labels` maps a label column (integers or strings) to class indices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import DataError


@dataclass(frozen=True)
class ColumnChoice:
    """The columns of a file that a run uses.

    Attributes
    ----------
    features : list of int
        Indices (into the file's columns) of the feature columns, in order.
    names : list of str or None
        Their header names (None for a file without a header).
    label : int or None
        Index of the label column, if any.
    conditions : list of int
        Indices of the condition columns (continuous covariates), in order.
    condition_names : list of str or None
        Their names (header names, else ``column <i>``); None without condition columns.
    """

    features: list[int]
    names: list[str] | None
    label: int | None = None
    conditions: list[int] = field(default_factory=list)
    condition_names: list[str] | None = None


def column_index(spec, n_cols: int, header: Sequence[str] | None, where: str, what: str) -> int:
    """The 0-based index of column ``spec`` (a header name or an index) of a file with
    ``n_cols`` columns; a one-line :class:`DataError` naming the column otherwise."""
    text = str(spec).strip()
    if header is not None and text in header:
        return list(header).index(text)
    if text.lstrip("-").isdigit():
        i = int(text)
        if not -n_cols <= i < n_cols:
            raise DataError(
                f"{what}: column index {i} is out of range for {where} with {n_cols} columns"
            )
        return i % n_cols
    known = f"; the header has: {', '.join(header)}" if header else " (no header row)"
    raise DataError(f"{what}: column {text!r} is not in {where}{known}")


def choose_columns(
    n_cols: int,
    header: Sequence[str] | None,
    where: str,
    columns=None,
    drop_columns=None,
    label_column=None,
    condition_columns=None,
) -> ColumnChoice:
    """Resolve the column options of a file with ``n_cols`` columns.

    Parameters
    ----------
    n_cols : int
        Number of columns of the file.
    header : sequence of str, optional
        The columns' names.
    where : str
        How error messages name the file.
    columns : list, optional
        The columns to use (default: all), by name or index, in this order.
    drop_columns : list, optional
        Columns left out of the features.
    label_column : str or int, optional
        A class-label column, also left out of the features.
    condition_columns : list, optional
        Columns of per-row conditions (covariates), also left out of the features.

    Raises
    ------
    DataError
        A column that is not in the file, or no feature column left.
    """
    pick = [column_index(c, n_cols, header, where, "--columns") for c in columns or ()]
    features = pick or list(range(n_cols))
    drop = {column_index(c, n_cols, header, where, "--drop-columns") for c in drop_columns or ()}
    label = None
    if label_column is not None and str(label_column).strip() != "":
        label = column_index(label_column, n_cols, header, where, "--label-column")
        drop.add(label)
    conditions = [
        column_index(c, n_cols, header, where, "--condition-columns")
        for c in condition_columns or ()
    ]
    if label is not None and label in conditions:
        raise DataError(
            f"--condition-columns: column {_name(label, header)} is also the --label-column"
        )
    drop.update(conditions)
    features = [i for i in features if i not in drop]
    if not features:
        left_out = [_name(i, header) for i in sorted(drop)]
        raise DataError(
            f"no feature columns of {where} are left after leaving out {', '.join(left_out)}"
        )
    names = [str(header[i]) for i in features] if header is not None else None
    condition_names = (
        [str(header[i]) if header is not None else f"column {i}" for i in conditions]
        if conditions
        else None
    )
    return ColumnChoice(
        features=features,
        names=names,
        label=label,
        conditions=conditions,
        condition_names=condition_names,
    )


def _name(i: int, header: Sequence[str] | None) -> str:
    return repr(str(header[i])) if header is not None else f"column {i}"


def encode_labels(values, where: str, classes: Sequence | None = None):
    """Map one label per row (numbers or strings) to class indices.

    Labels that read as whole numbers are classes in numeric order (so 0/1 labels keep
    their values as class indices); other labels are strings in sorted order.

    Parameters
    ----------
    values : array-like
        The label column, one entry per row.
    where : str
        How error messages name the column.
    classes : sequence, optional
        The classes of a run (stored in its data info): map ``values`` onto these
        instead of the classes found in ``values``.

    Returns
    -------
    y : Tensor
        ``(N,)`` int64 class indices.
    classes : list
        The class of each index (int or str), plain data for the run's data info.
    """
    raw = np.asarray(values).reshape(-1)
    labels = [_as_label(v) for v in raw.tolist()]
    if classes is None:
        numbers = sorted({v for v in labels if not isinstance(v, str)})
        words = sorted({v for v in labels if isinstance(v, str)})
        classes = numbers + words
        if len(classes) < 2:
            found = f"{classes[0]!r}" if classes else "none"
            raise DataError(f"{where} has a single class ({found}); a label needs two or more")
    lookup = {c: k for k, c in enumerate(classes)}
    try:
        y = [lookup[v] for v in labels]
    except KeyError as exc:
        raise DataError(
            f"{where} holds the label {exc.args[0]!r}, which is not one of the run's classes "
            f"({', '.join(map(str, classes))})"
        ) from None
    return torch.tensor(y, dtype=torch.int64), list(classes)


def _as_label(v):
    """A label as an int when it reads as a whole number, else as a stripped string."""
    if isinstance(v, (bytes, np.bytes_)):
        v = v.decode()
    text = v.strip().strip('"') if isinstance(v, str) else repr(float(v))
    try:
        f = float(text)
    except ValueError:
        return text
    return int(f) if np.isfinite(f) and f.is_integer() else text
