"""Validation of user data: one clear line per problem.

In-memory data are checked at once; a data set read on demand
(:class:`~pyrovae.data.stream.MemmapArray`) is checked chunk by chunk, with the
same messages.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from ..errors import DataError
from .stream import is_stream

logger = logging.getLogger(__name__)


def _check_shape(shape, name: str, min_dims: int) -> None:
    if len(shape) < min_dims:
        raise DataError(
            f"{name} must have at least {min_dims} dimensions (N, features...); "
            f"got shape {tuple(shape)}"
        )
    if shape[0] == 0:
        raise DataError(f"{name} is empty (0 rows)")
    if 0 in tuple(shape):
        raise DataError(f"{name} has no features (shape {tuple(shape)})")


#: How to say that NaN entries can be trained on (``--missing mask``).
MISSING_HINT = "missing entries (NaN) can be trained on with --missing mask (missing='mask')"


def as_data_tensor(
    data, name: str = "data", min_dims: int = 2, missing: bool = False
) -> torch.Tensor:
    """Convert array-like ``data`` to a float32 tensor ``(N, *data_shape)``, validating it.

    A :class:`~pyrovae.data.stream.MemmapArray` is validated in chunks and returned
    as it is (it is read on demand, never all at once).

    Parameters
    ----------
    missing : bool
        NaN entries stand for missing values and are kept (``--missing mask``); Inf
        is still refused.

    Raises
    ------
    DataError
        On non-numeric dtype, fewer than ``min_dims`` dimensions, no rows, no
        features, NaN values (unless ``missing``) or Inf values.
    """
    if is_stream(data):
        _check_shape(data.shape, name, min_dims)
        if missing:
            raise DataError(f"{name}: --missing mask needs the data in memory; it does not stream")
        return data.check_finite(name)
    if isinstance(data, torch.Tensor):
        t = data.detach()
    else:
        try:
            arr = np.asarray(data)
        except Exception as exc:  # ragged lists etc.
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(f"{name} cannot be read as an array: {first}") from None
        if arr.dtype == object or not (
            np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_
        ):
            raise DataError(f"{name} must be numeric; got dtype {arr.dtype}")
        t = torch.from_numpy(np.require(arr, requirements="CW"))  # 0-d stays 0-d
    if t.is_complex():
        dtype = str(t.dtype).removeprefix("torch.")
        raise DataError(f"{name} must be real-valued; got dtype {dtype}")
    _check_shape(t.shape, name, min_dims)
    t = t.to(torch.float32)
    # row chunks: torch.isfinite on the whole tensor would allocate an |x| temporary
    # as large as the data set
    if not all(bool(torch.isfinite(c).all()) for c in row_chunks(t)):
        finite = torch.isfinite(t) | torch.isnan(t) if missing else torch.isfinite(t)
        if bool(finite.all()):
            return t
        bad = (~finite).nonzero()[0].tolist()
        n_bad = int((~finite).sum())
        what = "Inf" if missing else "NaN or Inf"
        hint = f"; {MISSING_HINT}" if not missing and bool(torch.isnan(t).any()) else ""
        raise DataError(
            f"{name} contains {n_bad} {what} value(s), first at index {tuple(bad)}{hint}"
        )
    return t


def observation_mask(x: torch.Tensor, name: str = "data") -> torch.Tensor | None:
    """The observation mask of data ``x`` whose NaN entries stand for missing values
    (``True`` where observed), or None when every entry is observed.

    Raises
    ------
    DataError
        A row with no observed entry.
    """
    nan = torch.isnan(x)
    if not bool(nan.any()):
        return None
    mask = ~nan
    seen = mask.reshape(mask.shape[0], -1).any(1)
    if not bool(seen.all()):
        row = int((~seen).nonzero()[0])
        n = int((~seen).sum())
        raise DataError(f"{name} has {n} row(s) with no observed entry, first row {row}")
    return mask


def row_chunks(t: torch.Tensor, elements: int = 2**20):
    """``t`` split along its first dimension into views of about ``elements`` values."""
    if t.dim() == 0 or t.shape[0] == 0:
        return (t,)
    rows = max(1, elements // max(1, t[0].numel()))
    return t.split(rows)


def all_values(x, predicate) -> bool:
    """Whether the boolean tensor ``predicate(x)`` is true everywhere (chunk by chunk
    for a stream)."""
    return x.all(predicate) if is_stream(x) else bool(predicate(x).all())


def check_support(likelihood, x) -> None:
    """``likelihood.validate(x)``: raise :class:`DataError` naming the problem if ``x``
    lies outside the likelihood's support; a stream is checked chunk by chunk."""
    if not is_stream(x):
        likelihood.validate(x)
        return
    elementwise = getattr(type(likelihood).validate, "elementwise", False)
    if not elementwise or not hasattr(likelihood, "in_support"):
        # a likelihood with a check of its own (not in_support entry by entry):
        # run it on every chunk
        for t in x.chunks():
            likelihood.validate(t)
        return
    n_bad, example, lo, hi = 0, None, np.inf, -np.inf
    for t in x.chunks():
        ok = likelihood.in_support(t)
        lo, hi = min(lo, float(t.min())), max(hi, float(t.max()))
        if not bool(ok.all()):
            bad = t[~ok]
            n_bad += bad.numel()
            example = float(bad.flatten()[0]) if example is None else example
    if n_bad:
        raise DataError(
            f"the {likelihood.registry_name} likelihood needs {likelihood.support}, but "
            f"{n_bad} value(s) lie outside it (e.g. {example:g}; data range [{lo:g}, {hi:g}]); "
            "choose another likelihood or rescale the data"
        )


def warn_caveat(likelihood, x) -> str | None:
    """Log the likelihood's :meth:`~pyrovae.likelihoods.base.Likelihood.caveat` about data
    ``x`` (inside its support, but outside what makes it a normalised likelihood, such as
    grey levels under a Bernoulli) as a warning; return it, or None."""
    caveat = getattr(likelihood, "caveat", None)
    message = caveat(x) if caveat is not None else None
    if message:
        logger.warning("%s", message)
    return message


def class_labels(labels):
    """One label per row for colouring and class comparisons: the first column of
    multi-factor labels ``(N, F)`` (for ``shapes``, the shape), ``labels`` otherwise."""
    if labels is not None and getattr(labels, "ndim", 1) > 1:
        return labels[:, 0]
    return labels
