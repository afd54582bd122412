"""Named datasets and user files, split into train / validation / test.

Named datasets (registry :data:`~pyrovae.data.DATASETS`):

* ``digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 images,
  grey levels 0..16 scaled to [0, 1]); no download.
* ``mnist``, ``fashion-mnist``: through torchvision from ``root`` (default
  ``$PYROVAE_DATA`` or ``~/.cache/pyrovae``), downloaded when missing and online.

Any other spec is a path to the user's own array: ``.npy``, ``.npz`` (array
``x``, or the only array; labels ``y`` if present) or ``.csv`` (numeric, an
optional header row).

A ``.npy`` file is *streamed* (read in minibatches as training needs them, never
loaded whole; see :mod:`pyrovae.data.stream`) when ``stream=True``, and always when
its data are larger than :data:`AUTO_STREAM_FRACTION` of the memory available. The
train / validation / test splits of a streamed file are views (row numbers), the
scaling is fitted and the data are validated chunk by chunk.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from . import DATASETS
from .columns import choose_columns, encode_labels
from .labels import UNLABELLED, keep_labels, labels_to_keep
from .scaling import Scaler
from .stream import MemmapArray, is_stream
from .validation import all_values, as_data_tensor

logger = logging.getLogger(__name__)

FILE_SUFFIXES = (".npy", ".npz", ".csv")

#: A ``.npy`` file whose data are larger than this fraction of the memory available
#: is streamed even without ``stream=True``.
AUTO_STREAM_FRACTION = 0.5


@dataclass
class RawData:
    """A dataset as loaded, before splitting and scaling."""

    x: torch.Tensor  # or a MemmapArray (a streamed file)
    y: torch.Tensor | None = None
    x_test: torch.Tensor | None = None
    y_test: torch.Tensor | None = None
    x_val: torch.Tensor | None = None
    is_image: bool = False
    likelihood: str = "gaussian"
    #: Why ``likelihood`` suits the data (for the notice when it is chosen automatically).
    likelihood_reason: str = ""
    #: The columns' names (a CSV header), or None.
    feature_names: list[str] | None = None
    #: The class of each label index, for labels read from a label column.
    classes: list | None = None
    #: Per-row float conditions (e.g. the generating parameters of ``heston``), or None.
    conditions: torch.Tensor | None = None
    conditions_test: torch.Tensor | None = None
    #: The conditions' names (condition columns of a file), or None.
    condition_names: list[str] | None = None


@dataclass
class DataSplits:
    """Train, validation and test tensors of one dataset, scaled.

    Attributes
    ----------
    train, val, test : Tensor or MemmapArray
        ``(N, *data_shape)`` float32 (views of one file when the data are streamed).
    y_train, y_val, y_test : Tensor or None
        Labels where the dataset has them.
    name : str
        The data spec.
    is_image : bool
        Whether ``data_shape`` is ``(C, H, W)`` image data.
    likelihood : str
        The likelihood suggested for this data when the user names none.
    scaler : Scaler
        Fitted on ``train``; ``scaler.inverse`` maps back to the data's units.
    likelihood_reason : str
        Why ``likelihood`` was suggested.
    feature_names : list of str or None
        The name of each feature (a CSV header's, or a ``.npz`` archive's
        ``feature_names``); None where the data do not name them.
    classes : list or None
        The class (int or str) of each label index, for labels read from a label column.
    conditions_train, conditions_val, conditions_test : Tensor or None
        Per-row float conditions where the dataset has them (for ``heston``, the
        generating parameters; for a data file, its ``condition_columns``), split with
        the rows and not scaled.
    condition_names : list of str or None
        The conditions' names, for condition columns of a data file.
    """

    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    name: str = "data"
    y_train: torch.Tensor | None = None
    y_val: torch.Tensor | None = None
    y_test: torch.Tensor | None = None
    is_image: bool = False
    likelihood: str = "gaussian"
    scaler: Scaler = field(default_factory=Scaler)
    #: Applied to every training minibatch with the trainer's generator (e.g. dynamic
    #: binarization), or None.
    train_transform: object = None
    likelihood_reason: str = ""
    feature_names: list[str] | None = None
    classes: list | None = None
    conditions_train: torch.Tensor | None = None
    conditions_val: torch.Tensor | None = None
    conditions_test: torch.Tensor | None = None
    condition_names: list[str] | None = None

    @property
    def data_shape(self) -> tuple[int, ...]:
        return tuple(self.train.shape[1:])

    def split(self, name: str) -> torch.Tensor:
        """The tensor of split ``name`` (train, val or test)."""
        try:
            return {"train": self.train, "val": self.val, "test": self.test}[name]
        except KeyError:
            raise DataError(f"unknown split {name!r}; choose train, val or test") from None

    def labels(self, name: str) -> torch.Tensor | None:
        return {"train": self.y_train, "val": self.y_val, "test": self.y_test}[name]

    def targets(self, name: str) -> torch.Tensor | None:
        """What a conditional family reads of split ``name``: its labels where the data
        have them, else its per-row conditions, else None."""
        y = self.labels(name)
        return y if y is not None else self.conditions(name)

    def conditions(self, name: str) -> torch.Tensor | None:
        """The conditions of split ``name`` (train, val or test), or None."""
        return {
            "train": self.conditions_train,
            "val": self.conditions_val,
            "test": self.conditions_test,
        }[name]


def default_root() -> Path:
    """Where named datasets are looked for: ``$PYROVAE_DATA`` or ``~/.cache/pyrovae``."""
    return Path(os.environ.get("PYROVAE_DATA", Path.home() / ".cache" / "pyrovae"))


# -- named datasets ----------------------------------------------------------


@DATASETS.register("digits")
def load_digits(root=None, download: bool = True) -> RawData:
    """scikit-learn's 8x8 digits as (N, 1, 8, 8) grey levels in [0, 1]."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return RawData(x=x, y=torch.tensor(d.target), is_image=True, likelihood="bernoulli")


def _torchvision(cls_name: str, folder: str):
    def load(root=None, download: bool = True) -> RawData:
        import torchvision.datasets as tvd

        root = Path(root) if root is not None else default_root()
        cls = getattr(tvd, cls_name)
        raw = root / folder / "raw"
        files = "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
        files += "t10k-labels-idx1-ubyte (uncompressed)"
        try:
            train = cls(str(root), train=True, download=download)
            test = cls(str(root), train=False, download=download)
        except Exception as exc:
            why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            how = "could not be downloaded" if download else "downloading is off"
            raise DataError(
                f"{folder} is not under {raw} and {how} ({why}); put {files} in {raw}"
            ) from None

        def images(ds):
            return ds.data.to(torch.float32).unsqueeze(1) / 255.0

        return RawData(
            x=images(train),
            y=train.targets.clone(),
            x_test=images(test),
            y_test=test.targets.clone(),
            is_image=True,
            likelihood="bernoulli",
        )

    load.__doc__ = f"torchvision's {cls_name} as (N, 1, 28, 28) grey levels in [0, 1]."
    return load


DATASETS.register("mnist")(_torchvision("MNIST", "MNIST"))
DATASETS.register("fashion-mnist")(_torchvision("FashionMNIST", "FashionMNIST"))
DATASETS.register("kmnist")(_torchvision("KMNIST", "KMNIST"))


# -- user files --------------------------------------------------------------


@dataclass
class _Columns:
    """The column options of a data file (see :mod:`pyrovae.data.columns`)."""

    columns: list | None = None
    drop_columns: list | None = None
    label_column: str | int | None = None
    classes: list | None = None  # a run's classes, to map the labels onto
    condition_columns: list | None = None

    @property
    def any(self) -> bool:
        return bool(
            self.columns
            or self.drop_columns
            or self.condition_columns
            or self.label_column not in (None, "")
        )

    def choose(self, n_cols: int, header, where: str):
        """The :class:`~pyrovae.data.columns.ColumnChoice` of a file with ``n_cols``
        columns."""
        return choose_columns(
            n_cols,
            header,
            where,
            self.columns,
            self.drop_columns,
            self.label_column,
            self.condition_columns,
        )


def _csv_layout(path: Path) -> tuple[str, int, int, list[str] | None]:
    """The delimiter, the number of columns, the number of header rows (0 or 1) and the
    header (or None) of a CSV file."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        first = fh.readline()
    delim = ";" if first.count(";") > first.count(",") else ","
    cells = [c.strip().strip('"').strip() for c in first.split(delim)]
    try:
        [float(c) for c in cells if c]
        return delim, len(cells), 0, None
    except ValueError:
        return delim, len(cells), 1, cells  # a header row


def _cell(text: str) -> float:
    """A CSV cell as a number; an empty cell is a missing value (NaN)."""
    text = text.strip().strip('"').strip()
    return float(text) if text else math.nan


def _load_cells(path: Path, delim: str, skip: int, usecols) -> np.ndarray:
    """The numeric cells of a CSV file; empty cells become NaN (missing values, refused
    later unless ``--missing mask``)."""
    kw = dict(delimiter=delim, skiprows=skip, dtype=np.float64, ndmin=2, usecols=usecols)
    try:
        return np.loadtxt(path, **kw)
    except ValueError as exc:
        if "''" not in str(exc):  # not an empty cell: the error stands
            raise
        return np.loadtxt(path, converters=_cell, **kw)


def _read_csv(path: Path, cols: _Columns):
    """The feature array, the feature names (or None), the raw label column (or None)
    and the condition columns (or None)."""
    delim, n_cols, skip, header = _csv_layout(path)
    choice = cols.choose(n_cols, header, repr(str(path)))
    try:
        with warnings.catch_warnings():  # an empty file: reported below, not as a warning
            warnings.simplefilter("ignore", UserWarning)
            arr = _load_cells(path, delim, skip, choice.features)
            labels = conditions = None
            if choice.label is not None:
                labels = np.loadtxt(
                    path, delimiter=delim, skiprows=skip, dtype=str, ndmin=1, usecols=choice.label
                )
            if choice.conditions:
                conditions = np.loadtxt(
                    path,
                    delimiter=delim,
                    skiprows=skip,
                    dtype=np.float64,
                    ndmin=2,
                    usecols=choice.conditions,
                )
    except ValueError as exc:
        hint = (
            ""
            if cols.any
            else " (choose numeric columns with --columns, or leave text columns out with "
            "--drop-columns)"
        )
        raise DataError(
            f"cannot read data file {str(path)!r}: {str(exc).strip().splitlines()[0]}{hint}"
        ) from None
    if arr.size == 0:
        raise DataError(f"data file {str(path)!r} has no data rows")
    return arr, choice.names, labels, _conditions(conditions, choice, path)


@dataclass
class _ConditionColumns:
    """The condition columns of a file: values ``(N, k)`` float32 and their names."""

    values: torch.Tensor
    names: list[str]


def _conditions(values, choice, path: Path) -> _ConditionColumns | None:
    """The condition columns read from ``path`` (checked finite), or None."""
    if not choice.conditions:
        return None
    t = torch.as_tensor(np.asarray(values, dtype=np.float64)).reshape(-1, len(choice.conditions))
    if not torch.isfinite(t).all():
        raise DataError(f"the condition columns of {path.name!r} hold NaN or infinite values")
    return _ConditionColumns(t.float(), list(choice.condition_names))


# The first bytes of a .npy file and of a zip archive (.npz).
_MAGIC = {".npy": b"\x93NUMPY", ".npz": b"PK"}

#: Arrays of a ``.npz`` archive that are not the data: the labels and the column names.
_NPZ_EXTRAS = ("y", "feature_names")


def _check_magic(path: Path, suffix: str) -> None:
    with open(path, "rb") as fh:
        head = fh.read(len(_MAGIC[suffix]))
    if head != _MAGIC[suffix]:
        what = "NumPy .npy file" if suffix == ".npy" else "NumPy .npz archive"
        raise DataError(f"cannot read data file {str(path)!r}: it is not a valid {what}")


def _read_npz(path: Path):
    """The data array, the labels ``y`` and the column names ``feature_names`` (or None)."""
    with np.load(path, allow_pickle=False) as z:
        keys = list(z.keys())
        key = next((k for k in ("x", "X", "data") if k in keys), None)
        if key is None:
            data_keys = [k for k in keys if k not in _NPZ_EXTRAS]
            if len(data_keys) != 1:
                raise DataError(f"{str(path)!r} holds arrays {keys}; name the data array 'x'")
            key = data_keys[0]
        y = z["y"] if "y" in keys and key != "y" else None
        names = None
        if "feature_names" in keys and key != "feature_names":
            names = [str(n) for n in np.asarray(z["feature_names"]).reshape(-1).tolist()]
        return z[key], y, names


def _read_file(path: Path, cols: _Columns):
    """The data array, labels (or None), feature names (or None) and the raw label column
    chosen with ``label_column`` (or None) of a ``.npy`` / ``.npz`` / ``.csv`` file."""
    suffix = path.suffix.lower()
    try:
        if suffix in _MAGIC:
            _check_magic(path, suffix)
        if suffix == ".csv":
            arr, names, label_values, conditions = _read_csv(path, cols)
            return arr, None, names, label_values, conditions
        if suffix == ".npy":
            MemmapArray(path)  # the header: dtype, shape and size checked, one line each
            arr, y, names = np.load(path, allow_pickle=False), None, None
        else:
            arr, y, names = _read_npz(path)
    except DataError:
        raise
    except Exception as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "allow_pickle" in msg:
            msg = "it holds Python objects (dtype object), not a numeric array"
        raise DataError(f"cannot read data file {str(path)!r}: {msg}") from None
    if names is not None and (np.ndim(arr) != 2 or len(names) != np.shape(arr)[1]):
        raise DataError(
            f"{str(path)!r} names {len(names)} columns in 'feature_names' but its data have "
            f"shape {np.shape(arr)}"
        )
    label_values = conditions = None
    if cols.any:
        _need_2d(path, np.shape(arr))
        choice = cols.choose(arr.shape[1], names, repr(path.name))
        if choice.label is not None:
            label_values = arr[:, choice.label]
        if choice.conditions:
            try:
                values = np.asarray(arr[:, choice.conditions], dtype=np.float64)
            except (TypeError, ValueError):
                raise DataError(f"the condition columns of {path.name!r} are not numeric") from None
            conditions = _conditions(values, choice, path)
        arr, names = arr[:, choice.features], choice.names
    return arr, y, names, label_values, conditions


def _need_2d(path: Path, shape) -> None:
    if len(shape) != 2:
        raise DataError(
            f"columns can only be chosen from 2-D data; {path.name!r} has shape {tuple(shape)}"
        )


def looks_like_images(x: torch.Tensor) -> bool:
    """Rows of shape (H, W), or (C, H, W) with 1 or 3 channels."""
    return x.dim() == 3 or (x.dim() == 4 and x.shape[1] in (1, 3))


IMAGES_IN_UNIT = "the rows are images with values in [0, 1]"


def choose_likelihood(x: torch.Tensor) -> tuple[str, str]:
    """The default likelihood for data ``x`` (N, ...) and why: Bernoulli for binary data
    and for images with values in [0, 1], Gaussian otherwise. One rule for the CLI and
    the Python API (a stream is read in chunks)."""
    if all_values(x, lambda t: (t == 0) | (t == 1) | torch.isnan(t)):
        return "bernoulli", "every value is 0 or 1"
    if looks_like_images(x) and _in_unit(x):
        return "bernoulli", IMAGES_IN_UNIT
    return "gaussian", "the data are neither binary nor images with values in [0, 1]"


def suggest_likelihood(x: torch.Tensor) -> str:
    """The name of :func:`choose_likelihood`'s likelihood for ``x``."""
    return choose_likelihood(x)[0]


def _available_memory() -> int:
    """Bytes of memory available to new allocations (MemAvailable on Linux)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 2**63


def should_stream(path: Path, stream: bool) -> bool:
    """Whether to stream ``path``: asked for, or a ``.npy`` file too large to load."""
    if path.suffix.lower() != ".npy":
        if stream:
            raise DataError(
                f"--stream reads .npy files; save {path.name!r} with numpy.save to stream it"
            )
        return False
    if stream:
        return True
    size = path.stat().st_size
    if size > AUTO_STREAM_FRACTION * _available_memory():
        logger.info(
            "streaming %s: %.0f MB is more than half the memory available", path, size / 1e6
        )
        return True
    return False


def _labels(label_values, path: Path, label_column, classes) -> tuple:
    if label_values is None:
        return None, None
    return encode_labels(label_values, f"label column {label_column!r} of {path.name!r}", classes)


def _load_stream(path: Path, cols: _Columns) -> RawData:
    x = MemmapArray(path)
    y = classes = conditions = None
    if cols.any:
        _need_2d(path, x.shape)
        choice = cols.choose(x.shape[1], None, repr(path.name))
        if choice.label is not None:
            values = x.columns([choice.label]).to_tensor().numpy()
            y, classes = _labels(values, path, cols.label_column, cols.classes)
        if choice.conditions:
            values = x.columns(choice.conditions).to_tensor().numpy()
            conditions = _conditions(values, choice, path)
        x = x.columns(choice.features)
    x = as_data_tensor(x, name=f"data file {path.name!r}")
    is_image = looks_like_images(x)
    if x.dim() == 3:
        x = x.reshape_rows((1, *x.shape[1:]))
    name, why = choose_likelihood(x)
    return RawData(
        x=x,
        y=y,
        is_image=is_image,
        likelihood=name,
        likelihood_reason=why,
        classes=classes,
        conditions=None if conditions is None else conditions.values,
        condition_names=None if conditions is None else conditions.names,
    )


def load_file(
    path: str | Path,
    columns=None,
    stream: bool = False,
    drop_columns=None,
    label_column=None,
    classes=None,
    condition_columns=None,
    missing: bool = False,
) -> RawData:
    """Load the user's ``.npy`` / ``.npz`` / ``.csv`` array.

    Parameters
    ----------
    path : path
        The file.
    columns, drop_columns : list, optional
        Columns to use / to leave out: header names (a CSV header row, or the
        ``feature_names`` array of a ``.npz``) or 0-based indices (of 2-D arrays).
    stream : bool
        Read a ``.npy`` file on demand (see the module docstring).
    label_column : str or int, optional
        A class-label column (integers or strings), left out of the features and
        returned as class indices ``y`` with its ``classes``.
    classes : list, optional
        The classes to map the labels onto (a run's), instead of those found.
    condition_columns : list, optional
        Columns of per-row conditions (numbers), left out of the features and returned
        as float ``conditions`` with their ``condition_names``.
    missing : bool
        Keep NaN entries (and empty CSV cells) as missing values (``--missing mask``);
        refused otherwise.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file {str(path)!r} does not exist")
    if path.suffix.lower() not in FILE_SUFFIXES:
        raise DataError(
            f"cannot read data file {str(path)!r}: unsupported type "
            f"{path.suffix or '(none)'}; use {', '.join(FILE_SUFFIXES)}"
        )
    cols = _Columns(
        columns or None, drop_columns or None, label_column, classes, condition_columns or None
    )
    if should_stream(path, stream):
        return _load_stream(path, cols)
    arr, y, names, label_values, conditions = _read_file(path, cols)
    x = as_data_tensor(arr, name=f"data file {path.name!r}", missing=missing)
    is_image = looks_like_images(x)
    if x.dim() == 3:
        x = x.unsqueeze(1)
    labels = classes = None
    if label_values is not None:
        labels, classes = _labels(label_values, path, label_column, cols.classes)
    elif y is not None:
        labels = torch.as_tensor(np.asarray(y))
        if labels.shape[0] != x.shape[0]:
            raise DataError(
                f"labels 'y' in {str(path)!r} have {labels.shape[0]} rows but the data has "
                f"{x.shape[0]}"
            )
    name, why = choose_likelihood(x)
    return RawData(
        x=x,
        y=labels,
        is_image=is_image,
        likelihood=name,
        likelihood_reason=why,
        feature_names=names,
        classes=classes,
        conditions=None if conditions is None else conditions.values,
        condition_names=None if conditions is None else conditions.names,
    )


def _dataset_options(spec: str, loader, options: dict) -> dict:
    """``options`` checked against the names the dataset's loader accepts (its
    ``options`` attribute): one-line errors for a dataset without options and for an
    unknown name."""
    accepted = tuple(getattr(loader, "options", ()))
    if options and not accepted:
        raise DataError(f"dataset {spec!r} takes no data options; got {', '.join(options)}")
    for key in options:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise DataError(
                f"unknown option {key!r} of dataset {spec!r}{hint}; options: {', '.join(accepted)}"
            )
    return dict(options)


def load_raw(
    spec: str,
    root=None,
    download: bool = True,
    columns=None,
    stream: bool = False,
    drop_columns=None,
    label_column=None,
    classes=None,
    data_options: dict | None = None,
    condition_columns=None,
    missing: bool = False,
) -> RawData:
    """A named dataset or a file, unsplit and unscaled; ``data_options`` are passed to
    a named dataset's loader (see :func:`load_data`)."""
    spec = str(spec)
    options = dict(data_options or {})
    if spec in DATASETS:
        loader = DATASETS.get(spec)
        return loader(root=root, download=download, **_dataset_options(spec, loader, options))
    if options:
        raise DataError(f"data options apply to registered datasets, not to the file {spec!r}")
    if Path(spec).suffix.lower() in FILE_SUFFIXES or os.sep in spec or Path(spec).exists():
        return load_file(
            spec,
            columns,
            stream=stream,
            drop_columns=drop_columns,
            label_column=label_column,
            classes=classes,
            condition_columns=condition_columns,
            missing=missing,
        )
    try:
        DATASETS.get(spec)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{exc}; or give a path to a .npy, .npz or .csv file") from None
    raise AssertionError("unreachable")  # pragma: no cover


def _split_sizes(n: int, fraction: float, what: str) -> int:
    if not 0 <= fraction < 1:
        raise DataError(f"{what} fraction must be in [0, 1); got {fraction}")
    return int(round(n * fraction))


def load_data(
    spec: str = "digits",
    root=None,
    scale: str = "none",
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    split_seed: int = 0,
    download: bool = True,
    binarize: str = "none",
    columns=None,
    stream: bool = False,
    drop_columns=None,
    label_column=None,
    classes=None,
    data_options: dict | None = None,
    condition_columns=None,
    n_labels: int | None = None,
    label_fraction: float | None = None,
    missing: bool = False,
) -> DataSplits:
    """Load ``spec`` and split it into train / validation / test, then scale.

    Parameters
    ----------
    spec : str
        Registered dataset name or a path to ``.npy`` / ``.npz`` / ``.csv``.
    root : path, optional
        Folder of named datasets that need files (MNIST family).
    scale : str
        Name in :data:`~pyrovae.data.SCALERS`, fitted on the training split.
    val_fraction, test_fraction : float
        Held-out fractions (the test fraction is not used when the dataset
        has an official test split).
    split_seed : int
        Seed of the split permutation (independent of the training seed, so
        every run on the same data sees the same test set).
    download : bool
        Whether named datasets may be downloaded when missing.
    binarize : str
        Name in :data:`~pyrovae.data.binarize.BINARIZATIONS` ("none", "static", "dynamic").
    columns : list, optional
        Columns of a data file to use: CSV header names or 0-based indices.
    stream : bool
        Read a ``.npy`` file on demand in minibatches instead of loading it (files
        larger than half the memory available are always streamed); the splits are
        then :class:`~pyrovae.data.stream.MemmapArray` views.
    drop_columns : list, optional
        Columns of a data file to leave out of the features (names or indices).
    label_column : str or int, optional
        A column of a data file holding class labels (integers or strings): left out of
        the features, mapped to class indices (``y_train`` ...; ``classes`` maps them back).
    classes : list, optional
        The classes of a run, to map the label column onto (as recorded in its data info).
    data_options : dict, optional
        Options of a registered dataset (``--data-options KEY=VALUE``), e.g.
        ``{"observable": "iv"}`` for ``heston``; the names a dataset accepts are its
        loader's ``options`` attribute.
    condition_columns : list, optional
        Columns of a data file holding per-row conditions (continuous or one-hot
        covariates): left out of the features and kept, unscaled, as the rows'
        conditions (``conditions_train`` ...), which a conditional model reads.
    n_labels, label_fraction : optional
        Keep the labels of only this many (this fraction of the) training rows, drawn
        stratified by class with ``split_seed`` (:mod:`pyrovae.data.labels`); the other
        training rows and every validation row get the label -1 (unlabelled); the test
        labels stay.
    missing : bool
        Keep NaN entries of a data file (and empty CSV cells) as missing values
        (``--missing mask``): the scaler is fitted on the observed entries and the
        splits keep the NaNs (the estimator turns them into an observation mask).

    Raises
    ------
    DataError
        Unreadable data, an unknown column, no feature column left, or no rows left for
        training by the held-out fractions.
    """
    _check_file_options(spec, columns, drop_columns, label_column, stream, condition_columns)
    raw = load_raw(
        spec,
        root=root,
        download=download,
        columns=columns,
        stream=stream,
        drop_columns=drop_columns,
        label_column=label_column,
        classes=classes,
        data_options=data_options,
        condition_columns=condition_columns,
        missing=missing,
    )
    gen = torch.Generator().manual_seed(int(split_seed))
    (x, y, c), (x_val, y_val, c_val), (x_test, y_test, c_test) = _split(
        raw, spec, val_fraction, test_fraction, gen
    )
    keep = labels_to_keep(y, n_labels, label_fraction)
    if keep is not None:
        y = keep_labels(y, keep, split_seed)
        y_val = None if y_val is None else torch.full_like(y_val, UNLABELLED)
    scaler = Scaler(scale).fit(x)
    train, val, test = scaler.transform(x), scaler.transform(x_val), scaler.transform(x_test)
    from .binarize import BINARIZATIONS

    train, val, test, train_transform = BINARIZATIONS.get(binarize)(train, val, test, gen)
    likelihood, why = _suggested_likelihood(raw, spec, scale, binarize, (train, val, test))
    return DataSplits(
        train=train,
        val=val,
        test=test,
        name=spec,
        y_train=y,
        y_val=y_val,
        y_test=y_test,
        is_image=raw.is_image,
        likelihood=likelihood,
        scaler=scaler,
        train_transform=train_transform,
        likelihood_reason=why,
        feature_names=raw.feature_names,
        classes=raw.classes,
        conditions_train=c,
        conditions_val=c_val,
        conditions_test=c_test,
        condition_names=raw.condition_names,
    )


def _check_file_options(
    spec: str, columns, drop_columns, label_column, stream: bool, condition_columns=None
) -> None:
    """Options that only data files take are refused for a registered dataset."""
    for name, value in (
        ("columns", columns),
        ("drop_columns", drop_columns),
        ("label_column", label_column),
        ("condition_columns", condition_columns),
    ):
        if value not in (None, "", []) and spec in DATASETS:
            flag = "--" + name.replace("_", "-")
            raise DataError(f"{flag} applies to data files, not to the dataset {spec!r}")
    if stream and spec in DATASETS:
        raise DataError(f"--stream applies to .npy data files, not to the dataset {spec!r}")


def _split(raw, spec: str, val_fraction: float, test_fraction: float, gen) -> tuple:
    """(x, y, conditions) of the training, validation and test splits: a dataset's
    official splits where it has them, else rows drawn with ``gen``."""
    x, y, c = raw.x, raw.y, raw.conditions
    _check_labels(x, y, spec, "")
    _check_labels(raw.x_test, raw.y_test, spec, "test ")
    _check_labels(x, c, spec, "", "conditions")
    idx = torch.randperm(x.shape[0], generator=gen)  # row numbers; splits are slices of it
    if raw.x_test is not None:
        test = (raw.x_test, raw.y_test, raw.conditions_test)
    else:
        n_test = _split_sizes(x.shape[0], test_fraction, "test")
        test = tuple(_rows(t, idx[:n_test]) for t in (x, y, c))
        idx = idx[n_test:]
    if raw.x_val is not None:  # an official validation split
        val = (raw.x_val, None, None)
    else:
        n_val = _split_sizes(idx.shape[0], val_fraction, "validation")
        val = tuple(_rows(t, idx[:n_val]) for t in (x, y, c))
        idx = idx[n_val:]
    train = tuple(_rows(t, idx) for t in (x, y, c))
    if train[0].shape[0] == 0:
        held = f"{len(test[0])} test and {len(val[0])} validation rows"
        raise DataError(
            f"data {spec!r} has no rows left for training: {held} take all "
            f"{len(raw.x)} (lower --test-fraction / --val-fraction, or give more rows)"
        )
    return train, val, test


def _suggested_likelihood(raw, spec: str, scale: str, binarize: str, splits) -> tuple[str, str]:
    """The likelihood to use by default and why: the dataset's suggestion, Bernoulli for
    binarized data, Gaussian where scaling moved the data out of [0, 1]."""
    likelihood = raw.likelihood
    why = raw.likelihood_reason or (
        IMAGES_IN_UNIT
        if raw.is_image and likelihood == "bernoulli"
        else f"the dataset {spec!r} suggests it"
    )
    if binarize != "none":
        likelihood, why = "bernoulli", f"the data are binarized (binarize={binarize})"
    if likelihood == "bernoulli" and not all(_in_unit(t) for t in splits):
        likelihood, why = "gaussian", f"scale={scale} moved the data out of [0, 1]"
    return likelihood, why


def _rows(t, idx: torch.Tensor):
    """Rows ``idx`` of data, labels or conditions (None stays None)."""
    return None if t is None else _take(t, idx)


def _in_unit(x: torch.Tensor) -> bool:
    return all_values(x, lambda t: ((t >= 0) & (t <= 1)) | torch.isnan(t))


def _take(x, idx: torch.Tensor):
    """Rows ``idx`` of ``x``: a copy of an in-memory tensor, a view of a stream."""
    return x.take(idx) if is_stream(x) else x[idx]


def _check_labels(x, y, spec: str, which: str, what: str = "labels") -> None:
    if x is not None and y is not None and len(y) != len(x):
        raise DataError(
            f"the {which}{what} of data {spec!r} have {len(y)} rows but the data has {len(x)}"
        )
