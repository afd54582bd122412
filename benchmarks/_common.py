"""Helpers shared by the benchmark scripts: data, machine description, statistics.

Nothing here downloads anything: the default data are seeded random binary
vectors, and the optional binarized-MNIST reader only reads a local
``binarized_mnist_train.amat`` file (one image per line, 784 space-separated
0/1 values).
"""

from __future__ import annotations

import functools
import json
import os
import platform
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

#: Name of the training split of binarized MNIST (Larochelle & Murray 2011).
BINARIZED_MNIST_TRAIN = "binarized_mnist_train.amat"


def restores_threads(fn: Callable) -> Callable:
    """``fn`` with torch's intra-op thread count restored when it returns: a benchmark
    entry point that sets ``--threads`` leaves an in-process caller's setting alone."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        threads = torch.get_num_threads()
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)

    return wrapper


def synthetic_binary(n: int, dim: int = 784, seed: int = 0, p: float = 0.5) -> torch.Tensor:
    """``n`` seeded random binary vectors of length ``dim`` (float32, entries 0 or 1).

    Parameters
    ----------
    n : int
        Number of rows.
    dim : int
        Length of each row.
    seed : int
        Seed of the private generator (the global RNG is not touched).
    p : float
        Probability of a one.

    Returns
    -------
    Tensor
        Shape ``(n, dim)``.
    """
    g = torch.Generator().manual_seed(int(seed))
    return (torch.rand(n, dim, generator=g) < p).float()


def load_binarized_mnist(path: str | os.PathLike, max_rows: int | None = None) -> torch.Tensor:
    """Read binarized MNIST images from a local ``.amat`` file.

    Parameters
    ----------
    path : path-like
        The ``.amat`` file, or a directory holding ``binarized_mnist_train.amat``.
    max_rows : int, optional
        Read at most this many images (from the top of the file).

    Returns
    -------
    Tensor
        Shape ``(n, 784)``, float32 with entries 0 or 1.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If a line does not hold 784 values in {0, 1}.
    """
    path = Path(path)
    if path.is_dir():
        path = path / BINARIZED_MNIST_TRAIN
    if not path.is_file():
        raise FileNotFoundError(f"no binarized MNIST file at {path}")
    rows = []
    with path.open("rb") as f:
        for i, line in enumerate(f):
            if max_rows is not None and i >= max_rows:
                break
            row = np.array(line.split(), dtype=np.float32)
            if row.shape != (784,) or not np.isin(row, (0.0, 1.0)).all():
                raise ValueError(f"{path}:{i + 1}: expected 784 values in {{0, 1}}")
            rows.append(row)
    if not rows:
        raise ValueError(f"{path} holds no images")
    return torch.from_numpy(np.stack(rows))


def machine_info(threads: int | None = None) -> dict:
    """Platform, CPU count and library versions, for the benchmark record.

    Parameters
    ----------
    threads : int, optional
        Torch intra-op threads used by the run (default: the current setting).
    """
    import pyro

    from pyrovae.training.provenance import cpu_model

    info = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "pyro": pyro.__version__,
        "torch_threads": int(threads if threads is not None else torch.get_num_threads()),
        "cuda_available": torch.cuda.is_available(),
    }
    try:
        info["load_average"] = [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover - not on every platform
        pass
    return info


def parse_int_list(text: str) -> list[int]:
    """``"64,128, 256"`` -> ``[64, 128, 256]`` (positive integers)."""
    values = [int(v) for v in text.replace(" ", "").split(",") if v]
    if not values or any(v <= 0 for v in values):
        raise ValueError(f"expected a comma-separated list of positive integers; got {text!r}")
    return values


def summarize(values: Sequence[float]) -> dict:
    """Median, min and max of a non-empty sequence."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


def write_outputs(out: str | os.PathLike | None, name: str, record: dict, table: str) -> None:
    """Write ``NAME.json`` (the record) and ``NAME.md`` (the table) into ``out``, if given."""
    if out is None:
        return
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    (out / f"{name}.md").write_text(table)
