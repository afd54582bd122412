"""Data sets larger than memory: rows of a ``.npy`` file read on demand.

:class:`MemmapArray` stands in for the ``(N, *data_shape)`` float32 tensor that the
training loop, :class:`~pyrovae.data.TensorBatches` and the evaluation code consume:
it has ``.shape``, ``len()``, ``.dim()``, ``.to(device)``, and ``x[idx]`` (an index
tensor, a slice or an integer) returns the selected rows as a float32 tensor, read
from the file at that moment. Nothing else of the file is held in memory, so the
memory used does not grow with the size of the data set.

Views cost no copy: :meth:`MemmapArray.take` keeps a vector of row numbers (the
train / validation / test splits are such views of one shuffled index),
:meth:`MemmapArray.map` attaches an elementwise transform applied to every batch read
(fitted scaling, static binarization), :meth:`MemmapArray.columns` keeps some columns.
Statistics over a whole array (validation, scaling, the suggested likelihood) are
computed by :meth:`MemmapArray.chunks`, which reads the rows in file order, about a
megabyte at a time (small buffers matter: glibc serves large short-lived buffers from
its heap once one has been freed, and keeps the freed memory: loading and checking a
381 MiB file left ``RssAnon`` 90-180 MiB higher with 16 MB chunks, under 10 MiB with
1 MB chunks, at the same speed).

How rows are read (``reader``):

* ``"pread"`` (default for C-ordered files, where ``os.preadv`` exists): positional
  reads (``os.preadv``) of the runs of consecutive rows straight into the batch's
  buffer. The file is never
  mapped, so the pages read do not count in the process's resident set; they stay in
  the kernel's page cache, which the kernel reclaims under memory pressure.
* ``"mmap"``: ``numpy.load(path, mmap_mode="r")`` and fancy indexing; the only way
  for Fortran-ordered files. Every page touched stays mapped, and counts as
  file-backed resident memory (``RssFile`` in ``/proc/self/status``) until the array
  is closed, so the resident set grows with the part of the file read.

Measured (``tests/data/test_stream.py``: one epoch of ``pyrovae train --stream`` on
float32 images of 95 and 381 MiB, a fresh process each, 2-core machine): the process's
own memory (``RssAnon``) peaked at 468 and 469 MiB, 70 MiB above its level after the
imports (398 MiB: torch, Pyro, matplotlib); file-backed resident memory (``RssFile``,
the shared libraries) at 330 MiB for both; the kernel's high-water mark of the whole
resident set (``VmHWM``) at 798 and 799 MiB. With ``reader="mmap"`` ``RssAnon`` was
the same, but ``RssFile`` peaked at 425 and 711 MiB and ``VmHWM`` at 894 and
1181 MiB: the mapped pages of the file count in the resident set.

The header is parsed with :mod:`numpy.lib.format` (the ``.npy`` format, NEP 1:
https://numpy.org/neps/nep-0001-npy-format.html); pickled object arrays are refused.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError

logger = logging.getLogger(__name__)

READERS = ("pread", "mmap")

#: Bytes of data read per chunk by :meth:`MemmapArray.chunks` (see the module docstring).
CHUNK_BYTES = 2**20


_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


class _NpyFile:
    """An opened ``.npy`` file: header fields and a lazily opened file descriptor."""

    def __init__(self, path: Path, reader: str | None) -> None:
        self.path = path
        self._fd: int | None = None
        self._pid: int | None = None
        self._mmap: np.ndarray | None = None
        where = f"data file {str(path)!r}"
        try:
            with open(path, "rb") as fh:
                version = np.lib.format.read_magic(fh)
                if version not in _HEADER_READERS:
                    raise ValueError(f"unsupported .npy format version {version}")
                header = _HEADER_READERS[version](fh)
                self.offset = fh.tell()
        except FileNotFoundError:
            raise DataError(f"{where} does not exist") from None
        except Exception as exc:
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if "magic" in msg.lower():
                msg = "it is not a valid NumPy .npy file"
            raise DataError(f"cannot read {where}: {msg}") from None
        shape, fortran, dtype = header
        self.shape = tuple(int(s) for s in shape)
        self.fortran = bool(fortran)
        self.dtype = np.dtype(dtype)
        if self.dtype.hasobject:
            raise DataError(
                f"cannot read {where}: it holds Python objects (dtype object), not a numeric array"
            )
        if np.issubdtype(self.dtype, np.complexfloating):
            raise DataError(f"data file {path.name!r} must be real-valued; got dtype {self.dtype}")
        if not (np.issubdtype(self.dtype, np.number) or self.dtype == np.bool_):
            raise DataError(f"data file {path.name!r} must be numeric; got dtype {self.dtype}")
        self.row_items = math.prod(self.shape[1:]) if self.shape else 1
        self.row_bytes = self.row_items * self.dtype.itemsize
        needed = self.offset + math.prod(self.shape) * self.dtype.itemsize
        size = path.stat().st_size
        if size < needed:
            raise DataError(
                f"cannot read {where}: it is truncated ({size} bytes; its header "
                f"promises shape {self.shape} of {self.dtype}, {needed} bytes)"
            )
        if reader is None:  # os.preadv: Linux, the BSDs, macOS 11+; not Windows
            fortran = self.fortran and len(self.shape) > 1
            reader = "mmap" if fortran or not hasattr(os, "preadv") else "pread"
        if reader not in READERS:
            raise DataError(f"unknown reader {reader!r}; choose one of {', '.join(READERS)}")
        if reader == "pread" and self.fortran and len(self.shape) > 1:
            raise DataError(
                f"{where} stores its array in Fortran order, whose rows are not contiguous; "
                "read it with reader='mmap' or save it in C order"
            )
        self.reader = reader

    # -- low-level reads ---------------------------------------------------------------
    def _descriptor(self) -> int:
        if self._fd is None or self._pid != os.getpid():  # (re)open after a fork
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        return self._fd

    def _pread_into(self, buf: np.ndarray, first_row: int) -> None:
        """Fill ``buf`` (C-contiguous, whole rows) with rows from ``first_row`` on."""
        view = memoryview(buf).cast("B")
        pos, offset, fd = 0, self.offset + first_row * self.row_bytes, self._descriptor()
        while pos < len(view):
            n = os.preadv(fd, [view[pos:]], offset + pos)
            if n <= 0:
                raise DataError(f"data file {str(self.path)!r} ended early (was it truncated?)")
            pos += n

    def read_sorted(self, rows: np.ndarray) -> np.ndarray:
        """Rows ``rows`` (sorted, unique file row numbers) as an array ``(len(rows), items)``."""
        if self.reader == "mmap":
            if self._mmap is None:
                self._mmap = np.load(self.path, mmap_mode="r", allow_pickle=False)
            flat = self._mmap.reshape(self.shape[0], -1) if self.shape else self._mmap
            return np.ascontiguousarray(flat[rows])
        out = np.empty((len(rows), self.row_items), dtype=self.dtype)
        if len(rows) == 0:
            return out
        first, last = int(rows[0]), int(rows[-1])
        span = last - first + 1
        if span <= 2 * len(rows):  # dense: one read of the span, then pick the rows
            if span == len(rows):
                self._pread_into(out, first)
                return out
            block = np.empty((span, self.row_items), dtype=self.dtype)
            self._pread_into(block, first)
            return block[rows - first]
        starts = np.flatnonzero(np.diff(rows) != 1) + 1  # runs of consecutive rows
        for a, b in zip(np.r_[0, starts], np.r_[starts, len(rows)], strict=True):
            self._pread_into(out[a:b], int(rows[a]))
        return out

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            try:
                os.close(self._fd)
            except OSError:
                pass
        self._fd = None
        self._mmap = None

    def __del__(self) -> None:  # pragma: no cover - interpreter shutdown order varies
        self.close()

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.update(_fd=None, _pid=None, _mmap=None)
        return state


class MemmapArray:
    """The rows of a ``.npy`` file as a float32 data set, read on demand.

    Parameters
    ----------
    path : str or Path
        A ``.npy`` file holding a numeric array ``(N, *data_shape)``.
    reader : {"pread", "mmap"}, optional
        How rows are read (see the module docstring); default ``"pread"``, or
        ``"mmap"`` for Fortran-ordered files.

    Examples
    --------
    >>> x = MemmapArray("big.npy")                    # doctest: +SKIP
    >>> vae = VAE(likelihood="bernoulli").fit(x)       # doctest: +SKIP

    Notes
    -----
    ``x[idx]`` returns the rows in the order asked for; they are read in file
    order (sorted), which keeps reads of a shuffled minibatch local.
    """

    def __init__(self, path: str | Path, reader: str | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            raise DataError(f"data file {str(path)!r} is a folder, not a .npy file")
        self._file = _NpyFile(path, reader)
        self._rows: np.ndarray | None = None  # None: every row of the file, in order
        self._cols: np.ndarray | None = None
        self._row_shape = torch.Size(self._file.shape[1:])
        self._maps: tuple[Callable[[torch.Tensor], torch.Tensor], ...] = ()
        self.device = torch.device("cpu")
        self.finite_checked = False

    # -- array protocol -----------------------------------------------------------------
    @property
    def path(self) -> Path:
        return self._file.path

    @property
    def reader(self) -> str:
        return self._file.reader

    @property
    def shape(self) -> torch.Size:
        n = self._file.shape[0] if self._file.shape else 0
        n = len(self._rows) if self._rows is not None else n
        return torch.Size((n, *self._row_shape))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def dim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    @property
    def file_dtype(self) -> np.dtype:
        """The dtype stored in the file (rows are converted to float32 when read)."""
        return self._file.dtype

    def numel(self) -> int:
        return math.prod(self.shape)

    def __repr__(self) -> str:
        return (
            f"MemmapArray({str(self.path)!r}, shape={tuple(self.shape)}, "
            f"file dtype {self._file.dtype}, reader={self.reader!r})"
        )

    def __getitem__(self, key) -> torch.Tensor:
        rest = ()
        if isinstance(key, tuple):
            key, rest = (key[0], key[1:]) if key else (slice(None), ())
        n = len(self)
        if isinstance(key, slice):
            out = self._read(np.arange(*key.indices(n), dtype=np.int64))
        elif isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            i = int(key)
            if not -n <= i < n:
                raise IndexError(f"row {i} is out of range for {n} rows")
            out = self._read(np.array([i % n], dtype=np.int64))[0]
        else:
            out = self._read(self._positions(key))
        return out[(slice(None), *rest)] if rest and out.dim() else out

    def __iter__(self) -> Iterator[torch.Tensor]:
        for chunk in self.chunks(ordered=True):
            yield from chunk

    # -- views ----------------------------------------------------------------------------
    def _view(self, **changes) -> MemmapArray:
        out = object.__new__(MemmapArray)
        out.__dict__.update(self.__dict__)
        out.__dict__.update(changes)
        return out

    def _positions(self, index) -> np.ndarray:
        """Row positions (into this view) from an index tensor / array / list."""
        if isinstance(index, torch.Tensor):
            index = index.detach().cpu().numpy()
        idx = np.asarray(index)
        if idx.dtype == np.bool_:
            if idx.shape != (len(self),):
                raise IndexError(f"a boolean index of shape {idx.shape} for {len(self)} rows")
            return np.flatnonzero(idx)
        if idx.ndim != 1 or not (np.issubdtype(idx.dtype, np.integer) or idx.size == 0):
            raise IndexError(
                f"rows are selected by a 1-D integer index; got {idx.dtype} {idx.shape}"
            )
        idx = idx.astype(np.int64, copy=False)
        n = len(self)
        if idx.size and (idx.max() >= n or idx.min() < -n):
            raise IndexError(f"row index out of range for {n} rows")
        return np.where(idx < 0, idx + n, idx)

    def _file_rows(self, positions: np.ndarray) -> np.ndarray:
        return self._rows[positions] if self._rows is not None else positions

    def take(self, index) -> MemmapArray:
        """A view of the rows ``index`` (an index tensor, array, slice or boolean mask):
        only the row numbers are stored."""
        if isinstance(index, slice):
            positions = np.arange(*index.indices(len(self)), dtype=np.int64)
        else:
            positions = self._positions(index)
        return self._view(_rows=self._file_rows(positions))

    def columns(self, index) -> MemmapArray:
        """A view keeping the columns ``index`` of a 2-D array (read, then selected)."""
        if len(self._row_shape) != 1:
            raise DataError(
                f"columns can only be chosen from 2-D data; {self.path.name!r} has shape "
                f"{tuple(self.shape)}"
            )
        cols = np.asarray(index, dtype=np.int64)
        width = self._row_shape[0]
        if cols.size == 0 or cols.max() >= width or cols.min() < -width:
            raise DataError(
                f"column index out of range for {self.path.name!r} with {width} columns"
            )
        cols = np.where(cols < 0, cols + width, cols)
        if self._cols is not None:
            cols = self._cols[cols]
        return self._view(_cols=cols, _row_shape=torch.Size((len(cols),)))

    def reshape_rows(self, shape) -> MemmapArray:
        """A view whose rows have ``shape`` (same number of values per row)."""
        shape = torch.Size(int(s) for s in shape)
        if math.prod(shape) != math.prod(self._row_shape):
            raise DataError(f"cannot view rows of shape {tuple(self._row_shape)} as {tuple(shape)}")
        return self._view(_row_shape=shape)

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor], *, keeps_finite: bool = True):
        """A view applying ``fn`` (elementwise on a float32 batch) to every read.

        ``keeps_finite``: whether ``fn`` maps finite values to finite values (so a
        finiteness check done before still holds).
        """
        return self._view(
            _maps=(*self._maps, fn), finite_checked=self.finite_checked and keeps_finite
        )

    def to(self, device=None, dtype=None, **kwargs) -> MemmapArray:
        """A view whose reads land on ``device`` (float32 only)."""
        if isinstance(device, torch.dtype):
            device, dtype = None, device
        if dtype is not None and dtype != torch.float32:
            raise DataError(f"a MemmapArray reads float32 rows; cannot convert to {dtype}")
        if device is None:
            return self
        return self._view(device=torch.device(device))

    def cpu(self) -> MemmapArray:
        return self.to("cpu")

    def detach(self) -> MemmapArray:
        return self

    # -- reading --------------------------------------------------------------------------
    def _read_file_rows(self, rows: np.ndarray, sorted_unique: bool = False) -> torch.Tensor:
        """Float32 tensor ``(len(rows), *row_shape)`` on the CPU, maps applied."""
        if sorted_unique:
            raw = self._file.read_sorted(rows)
        else:
            uniq, inverse = np.unique(rows, return_inverse=True)
            raw = self._file.read_sorted(uniq)
            if len(uniq) != len(rows) or not np.array_equal(uniq, rows):
                raw = raw[inverse]
        if self._cols is not None:
            raw = raw[:, self._cols]
        if raw.dtype != np.float32 or not raw.dtype.isnative or not raw.flags.c_contiguous:
            raw = np.ascontiguousarray(raw, dtype=np.float32)
        t = torch.from_numpy(raw).reshape(len(rows), *self._row_shape)
        for fn in self._maps:
            t = fn(t)
        return t

    def _read(self, positions: np.ndarray) -> torch.Tensor:
        t = self._read_file_rows(self._file_rows(positions))
        return t.to(self.device) if self.device.type != "cpu" else t

    def chunks(
        self, rows_per_chunk: int | None = None, ordered: bool = False, with_positions=False
    ) -> Iterator:
        """Iterate over the rows in float32 CPU tensors of about :data:`CHUNK_BYTES`.

        Parameters
        ----------
        rows_per_chunk : int, optional
            Rows per chunk (default: :data:`CHUNK_BYTES` worth of file data).
        ordered : bool
            Yield the rows in this view's order; by default they come in file order
            (fastest; enough for statistics that do not depend on the order).
        with_positions : bool
            Yield ``(positions, tensor)``: the rows' positions in this view.
        """
        n = len(self)
        k = rows_per_chunk or max(1, CHUNK_BYTES // max(self._file.row_bytes, 1))
        if self._rows is None or ordered:
            order = None
        else:
            order = np.argsort(self._rows, kind="stable")
        for a in range(0, n, k):
            pos = np.arange(a, min(a + k, n), dtype=np.int64) if order is None else order[a : a + k]
            rows = self._file_rows(pos)
            t = self._read_file_rows(rows, sorted_unique=self._rows is None or order is not None)
            yield (pos, t) if with_positions else t

    def to_tensor(self) -> torch.Tensor:
        """Read every row into one in-memory tensor (on ``self.device``)."""
        logger.info("reading %d rows of %s into memory", len(self), self.path.name)
        t = torch.empty(self.shape, dtype=torch.float32)
        i = 0
        for chunk in self.chunks(ordered=True):
            t[i : i + len(chunk)] = chunk
            i += len(chunk)
        return t.to(self.device)

    # -- whole-array checks ------------------------------------------------------------------
    def check_finite(self, name: str = "data") -> MemmapArray:
        """Raise :class:`DataError` (the message of :func:`as_data_tensor`) on NaN or Inf."""
        if self.finite_checked:
            return self
        n_bad, first = 0, None
        for pos, t in self.chunks(with_positions=True):
            if bool(torch.isfinite(t).all()):
                continue
            bad = ~torch.isfinite(t)
            count = int(bad.sum())
            if count:
                n_bad += count
                rows = bad.reshape(len(t), -1).any(1).nonzero()[:, 0]
                j = int(rows[np.argmin(pos[rows.numpy()])])
                where = (int(pos[j]), *bad[j].nonzero()[0].tolist())
                first = where if first is None or where < first else first
        if n_bad:
            raise DataError(f"{name} contains {n_bad} NaN or Inf value(s), first at index {first}")
        self.finite_checked = True
        return self

    def all(self, predicate: Callable[[torch.Tensor], torch.Tensor]) -> bool:
        """Whether ``predicate(chunk)`` (a boolean tensor) holds everywhere."""
        return all(bool(predicate(t).all()) for t in self.chunks())

    def extrema(self) -> tuple[float, float]:
        """The smallest and largest value."""
        lo, hi = math.inf, -math.inf
        for t in self.chunks():
            if t.numel():
                lo, hi = min(lo, float(t.min())), max(hi, float(t.max()))
        return lo, hi


def is_stream(x) -> bool:
    """Whether ``x`` is a data set read on demand (a :class:`MemmapArray`)."""
    return isinstance(x, MemmapArray)


def feature_moments(x) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean and standard deviation (``1/N``) over the rows of ``x``.

    For a stream, chunks are merged with the pairwise update of Chan, Golub & LeVeque
    (1979, "Updating formulae and a pairwise algorithm for computing sample variances")
    in float64, so constant features get a standard deviation of exactly 0.
    """
    if not is_stream(x):
        if bool(torch.isnan(x).any()):  # missing entries (NaN): moments of the observed
            mean = x.nanmean(0)
            return mean, (x - mean).pow(2).nanmean(0).sqrt()
        return x.mean(0), x.std(0, unbiased=False)
    n, mean, m2 = 0, None, None
    for t in x.chunks():
        t = t.to(torch.float64)
        k = t.shape[0]
        if k == 0:
            continue
        mu = t.mean(0)
        c2 = ((t - mu) ** 2).sum(0)
        if mean is None:
            n, mean, m2 = k, mu, c2
            continue
        delta = mu - mean
        total = n + k
        mean = mean + delta * (k / total)
        m2 = m2 + c2 + delta**2 * (n * k / total)
        n = total
    return mean.to(torch.float32), (m2 / n).sqrt().to(torch.float32)


def feature_range(x) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature minimum and maximum over the rows of ``x``."""
    if not is_stream(x):
        nan = torch.isnan(x)
        if bool(nan.any()):  # missing entries (NaN): the range of the observed
            lo = torch.where(nan, torch.inf, x).min(0).values
            return lo, torch.where(nan, -torch.inf, x).max(0).values
        return x.min(0).values, x.max(0).values
    lo = hi = None
    for t in x.chunks():
        if t.shape[0] == 0:
            continue
        a, b = t.min(0).values, t.max(0).values
        lo = a if lo is None else torch.minimum(lo, a)
        hi = b if hi is None else torch.maximum(hi, b)
    return lo, hi
