"""Advice about a data set before training: one log line per likely mistake.

:func:`advise` looks at the training split of freshly loaded data and logs, through
the ``pyrovae`` logger (the command line shows warnings and notices):

* which likelihood was chosen automatically and why (a notice, when none was named);
* continuous features whose standard deviations differ by more than
  :data:`SCALE_RATIO` while no scaling was asked for (a one-scale likelihood then
  fits the widest feature and ignores the narrowest), naming both columns;
* columns that look like a label or target (named like one, see
  :data:`LABEL_NAMES`, or with few whole-number values among continuous columns),
  which a VAE would otherwise model as a feature;
* a validation split left empty by a small data set (early stopping then watches the
  training loss).

The checks read at most :data:`ROWS` rows, so that a data set read on demand is not
read whole. They are heuristics: each says what it saw and which option changes it.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .datasets import DataSplits

logger = logging.getLogger(__name__)

#: Continuous features whose standard deviations differ by more than this factor
#: get the scaling warning.
SCALE_RATIO = 100.0
#: Column names (compared in lower case) that mark a label or target.
LABEL_NAMES = frozenset({"target", "targets", "label", "labels", "class", "y", "outcome"})
#: A column of whole numbers with at most this many distinct values is categorical.
FEW_VALUES = 10
#: More categorical columns than this are a categorical table, not a label among features.
MAX_LABEL_LIKE = 2
#: Rows of the training split that the checks read.
ROWS = 10_000


@dataclass(frozen=True)
class ColumnStats:
    """Per-column statistics of a table ``(N, D)``."""

    sd: torch.Tensor  # (D,) standard deviation (1/N)
    whole: torch.Tensor  # (D,) bool: every value a whole number
    distinct: torch.Tensor  # (D,) number of distinct values

    @property
    def categorical(self) -> torch.Tensor:
        """Whole numbers with at most :data:`FEW_VALUES` distinct values."""
        return self.whole & (self.distinct <= FEW_VALUES)


def column_stats(x: torch.Tensor) -> ColumnStats:
    """:class:`ColumnStats` of the rows ``x`` ``(N, D)``."""
    x = x.double()
    ordered = x.sort(0).values
    distinct = 1 + (ordered[1:] != ordered[:-1]).sum(0)
    return ColumnStats(
        sd=x.std(0, correction=0),
        whole=(x == x.round()).all(0),
        distinct=distinct,
    )


def column_names(names: Sequence[str] | None, d: int) -> list[str]:
    """The names of ``d`` columns: ``names``, or ``column 0`` ... for unnamed data."""
    return list(names) if names is not None else [f"column {i}" for i in range(d)]


def _flag_value(name: str, names: Sequence[str] | None, i: int) -> str:
    """How to name column ``i`` on the command line (its header name, else its index)."""
    return shlex.quote(name) if names is not None else str(i)


def scale_warning(x: torch.Tensor, names: Sequence[str] | None = None) -> str | None:
    """The warning for continuous columns of ``x`` ``(N, D)`` whose standard deviations
    differ by more than :data:`SCALE_RATIO`, or None. Categorical and constant columns
    are left out."""
    stats = column_stats(x)
    keep = (~stats.categorical & (stats.sd > 0)).nonzero().flatten()
    if keep.numel() < 2:
        return None
    sd = stats.sd[keep]
    wide, narrow = keep[sd.argmax()].item(), keep[sd.argmin()].item()
    ratio = float(sd.max() / sd.min())
    if ratio <= SCALE_RATIO:
        return None
    label = column_names(names, x.shape[1])
    return (
        f"the features differ in scale by a factor of {ratio:.3g} and are not scaled "
        f"(standard deviation {float(stats.sd[wide]):.3g} of {label[wide]!r}, "
        f"{float(stats.sd[narrow]):.3g} of {label[narrow]!r}): a likelihood with one scale "
        "fits the widest features and hardly sees the narrowest; use --scale standardize "
        "(or --scale minmax)"
    )


def label_warnings(x: torch.Tensor, names: Sequence[str] | None = None) -> list[str]:
    """Warnings for the columns of ``x`` ``(N, D)`` that look like a label or target:
    named like one (:data:`LABEL_NAMES`), or categorical (few whole-number values) among
    mostly continuous columns."""
    d = x.shape[1]
    if d < 2:
        return []
    stats = column_stats(x)
    label = column_names(names, d)
    named = [names is not None and str(n).strip().lower() in LABEL_NAMES for n in label]
    categorical = (stats.categorical & (stats.distinct >= 2)).tolist()
    continuous = ~stats.whole
    out = []
    if sum(categorical) <= MAX_LABEL_LIKE:
        for i in range(d):
            others = torch.cat([continuous[:i], continuous[i + 1 :]])
            mostly_continuous = float(others.double().mean()) >= 0.5
            categorical[i] = categorical[i] and mostly_continuous
    else:
        categorical = [False] * d
    for i in range(d):
        if not (named[i] or categorical[i]):
            continue
        why = []
        if named[i]:
            why.append(f"named {label[i]!r}")
        if categorical[i]:
            why.append(
                f"{int(stats.distinct[i])} distinct whole-number values while the other "
                "columns are continuous"
            )
        flag = _flag_value(label[i], names, i)
        out.append(
            f"column {label[i]!r} looks like a label or target ({'; '.join(why)}) but is "
            f"modelled as a feature; leave it out with --drop-columns {flag}, or keep it as "
            f"the rows' class label with --label-column {flag}"
        )
    return out


def split_message(data: DataSplits, val_fraction: float) -> str | None:
    """What early stopping watches when the validation split is empty, or None."""
    if data.val.shape[0]:
        return None
    why = (
        f"{val_fraction:g} of {data.train.shape[0]} rows rounds to 0"
        if val_fraction > 0
        else "val_fraction is 0"
    )
    return (
        f"the validation split of {data.name!r} is empty ({why}): early stopping "
        "(--patience) and the best checkpoint follow the training loss"
    )


def likelihood_notice(data: DataSplits) -> str:
    """The notice for a likelihood chosen automatically: which one and why."""
    return (
        f"likelihood {data.likelihood!r} chosen automatically: {data.likelihood_reason} "
        "(choose one with --likelihood)"
    )


def _table(data: DataSplits) -> torch.Tensor | None:
    """The first :data:`ROWS` training rows of tabular data ``(N, D)``, else None."""
    if data.is_image or len(data.data_shape) != 1 or data.train.shape[0] == 0:
        return None
    return torch.as_tensor(data.train[:ROWS])


def advise(
    data: DataSplits,
    *,
    likelihood: str | None = None,
    scale_given: bool = False,
    val_fraction: float = 0.1,
) -> list[str]:
    """Log advice about ``data`` before training (see the module docstring).

    Parameters
    ----------
    data : DataSplits
        Freshly loaded data (:func:`~pyrovae.data.load_data`).
    likelihood : str, optional
        The likelihood the user named; None when it is chosen automatically
        (``data.likelihood``), which is then announced.
    scale_given : bool
        Whether the user chose the scaling (then the data are not checked for it).
    val_fraction : float
        The validation fraction asked for.

    Returns
    -------
    list of str
        The warnings logged (notices are only logged).
    """
    warnings = []
    if likelihood is None:
        logger.info("%s", likelihood_notice(data))
    x = _table(data)
    if x is not None:
        if not scale_given and data.scaler.method == "none":
            warnings.append(scale_warning(x, data.feature_names))
        warnings += label_warnings(x, data.feature_names)
    message = split_message(data, val_fraction)
    if message is not None and val_fraction > 0:
        warnings.append(message)
    elif message is not None:
        logger.info("%s", message)
    warnings = [w for w in warnings if w]
    for w in warnings:
        logger.warning("%s", w)
    return warnings
