"""Validation of user data: one clear line per problem."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import DataError


def as_data_tensor(data, name: str = "data", min_dims: int = 2) -> torch.Tensor:
    """Convert array-like ``data`` to a float32 tensor ``(N, *data_shape)``, validating it.

    Raises
    ------
    DataError
        On non-numeric dtype, fewer than ``min_dims`` dimensions, no rows, no
        features, or NaN / Inf values.
    """
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
        raise DataError(f"{name} must be real-valued; got dtype {t.dtype}")
    if t.dim() < min_dims:
        raise DataError(
            f"{name} must have at least {min_dims} dimensions (N, features...); "
            f"got shape {tuple(t.shape)}"
        )
    if t.shape[0] == 0:
        raise DataError(f"{name} is empty (0 rows)")
    if t.numel() == 0:
        raise DataError(f"{name} has no features (shape {tuple(t.shape)})")
    t = t.to(torch.float32)
    finite = torch.isfinite(t)
    if not bool(finite.all()):
        bad = (~finite).nonzero()[0].tolist()
        n_bad = int((~finite).sum())
        raise DataError(f"{name} contains {n_bad} NaN or Inf value(s), first at index {tuple(bad)}")
    return t
