"""Semi-supervised label draws: keep the labels of only some training rows.

``--n-labels N`` (or ``--label-fraction f``, N = round(f * rows)) keeps the labels of N
training rows, drawn stratified by class: class c, with n_c of the n labelled training
rows, gets round(N n_c / n) of them by the largest-remainder rule, and at least one, so
every class is seen (N must be at least the number of classes). The rows of each class
are drawn uniformly without replacement with a generator seeded by the split seed, so
that the same split seed gives the same labelled rows. The other rows get the label -1
(scikit-learn's semi-supervised convention for unlabelled rows).
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import DataError

#: Unlabelled rows carry this label.
UNLABELLED = -1
#: Offset of the label-draw generator's seed from the split seed (its own stream).
LABEL_STREAM = 104729


def labels_to_keep(
    y: torch.Tensor, n_labels: int | None, label_fraction: float | None
) -> int | None:
    """The number of labels ``--n-labels`` / ``--label-fraction`` keep of ``y`` (None:
    all), checked: one-line :class:`DataError` for the impossible ones."""
    if n_labels is None and label_fraction is None:
        return None
    if n_labels is not None and label_fraction is not None:
        raise DataError("give --n-labels or --label-fraction, not both")
    if y is None:
        raise DataError(
            "--n-labels / --label-fraction need labelled data (a labelled dataset such as "
            "digits, or --label-column)"
        )
    labelled = y[y >= 0]
    rows = int(labelled.numel())
    n = int(n_labels) if n_labels is not None else int(round(float(label_fraction) * rows))
    classes = int(torch.unique(labelled).numel())
    if n > rows:
        raise DataError(f"--n-labels {n} is more than the {rows} labelled training rows")
    if n < classes:
        raise DataError(
            f"--n-labels {n} is fewer than the {classes} classes: each class needs a label"
        )
    return n


def allocate(counts: np.ndarray, n: int) -> np.ndarray:
    """Labels per class: proportional to ``counts`` by the largest-remainder rule, at
    least 1 and at most the class's count, summing to ``n`` (``len(counts) <= n <=
    counts.sum()``)."""
    quota = n * counts / counts.sum()
    take = np.clip(np.floor(quota).astype(int), 1, counts)
    while take.sum() < n:  # the largest remainder among the classes with rows left
        room = np.where(take < counts, quota - take, -np.inf)
        take[int(np.argmax(room))] += 1
    while take.sum() > n:  # the minimum of 1 pushed the sum over: the largest excess
        excess = np.where(take > 1, take - quota, -np.inf)
        take[int(np.argmax(excess))] -= 1
    return take


def keep_labels(y: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``y`` with all but ``n`` labels, drawn stratified by class, set to -1."""
    values = y.cpu().numpy()
    classes, counts = np.unique(values[values >= 0], return_counts=True)
    take = allocate(counts, int(n))
    rng = np.random.default_rng([int(seed) + LABEL_STREAM])
    keep = np.zeros(values.shape[0], dtype=bool)
    for c, k in zip(classes, take, strict=True):
        rows = np.flatnonzero(values == c)
        keep[rng.choice(rows, size=int(k), replace=False)] = True
    out = y.clone()
    out[torch.as_tensor(~keep)] = UNLABELLED
    return out
