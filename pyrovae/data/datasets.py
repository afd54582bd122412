"""Named datasets and user files, split into train / validation / test.

Named datasets (registry :data:`~pyrovae.data.DATASETS`):

* ``digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 images,
  grey levels 0..16 scaled to [0, 1]); no download.
* ``mnist``, ``fashion-mnist``: through torchvision from ``root`` (default
  ``$PYROVAE_DATA`` or ``~/.cache/pyrovae``), downloaded when missing and online.

Any other spec is a path to the user's own array: ``.npy``, ``.npz`` (array
``x``, or the only array; labels ``y`` if present) or ``.csv`` (numeric, an
optional header row).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from . import DATASETS
from .scaling import Scaler
from .validation import as_data_tensor

FILE_SUFFIXES = (".npy", ".npz", ".csv")


@dataclass
class RawData:
    """A dataset as loaded, before splitting and scaling."""

    x: torch.Tensor
    y: torch.Tensor | None = None
    x_test: torch.Tensor | None = None
    y_test: torch.Tensor | None = None
    x_val: torch.Tensor | None = None
    is_image: bool = False
    likelihood: str = "gaussian"


@dataclass
class DataSplits:
    """Train, validation and test tensors of one dataset, scaled.

    Attributes
    ----------
    train, val, test : Tensor
        ``(N, *data_shape)`` float32.
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


def _column_indices(columns, header: list[str] | None, path: Path) -> list[int] | None:
    """Column names (CSV header) or 0-based indices -> indices."""
    if not columns:
        return None
    out = []
    for c in columns:
        c = str(c).strip()
        if c.lstrip("-").isdigit():
            out.append(int(c))
        elif header is not None and c in header:
            out.append(header.index(c))
        else:
            known = f"; the header has: {', '.join(header)}" if header else " (no header row)"
            raise DataError(f"column {c!r} is not in {str(path)!r}{known}")
    return out


def _read_csv(path: Path, columns=None) -> np.ndarray:
    with open(path, encoding="utf-8", errors="replace") as fh:
        first = fh.readline()
    delim = ";" if first.count(";") > first.count(",") else ","
    cells = [c.strip() for c in first.split(delim)]
    try:
        [float(c) for c in cells if c]
        skip, header = 0, None
    except ValueError:
        skip, header = 1, cells  # a header row
    usecols = _column_indices(columns, header, path)
    try:
        with warnings.catch_warnings():  # an empty file: reported below, not as a warning
            warnings.simplefilter("ignore", UserWarning)
            arr = np.loadtxt(
                path, delimiter=delim, skiprows=skip, dtype=np.float64, ndmin=2, usecols=usecols
            )
    except ValueError as exc:
        hint = "" if columns else " (choose numeric columns with --columns)"
        raise DataError(
            f"cannot read data file {str(path)!r}: {str(exc).strip().splitlines()[0]}{hint}"
        ) from None
    if arr.size == 0:
        raise DataError(f"data file {str(path)!r} has no data rows")
    return arr


# The first bytes of a .npy file and of a zip archive (.npz).
_MAGIC = {".npy": b"\x93NUMPY", ".npz": b"PK"}


def _check_magic(path: Path, suffix: str) -> None:
    with open(path, "rb") as fh:
        head = fh.read(len(_MAGIC[suffix]))
    if head != _MAGIC[suffix]:
        what = "NumPy .npy file" if suffix == ".npy" else "NumPy .npz archive"
        raise DataError(f"cannot read data file {str(path)!r}: it is not a valid {what}")


def _read_file(path: Path, columns=None) -> tuple[np.ndarray, np.ndarray | None]:
    suffix = path.suffix.lower()
    try:
        if suffix in _MAGIC:
            _check_magic(path, suffix)
        if suffix == ".npy":
            return np.load(path, allow_pickle=False), None
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                keys = list(z.keys())
                key = next((k for k in ("x", "X", "data") if k in keys), None)
                if key is None:
                    if len(keys) != 1:
                        raise DataError(
                            f"{str(path)!r} holds arrays {keys}; name the data array 'x'"
                        )
                    key = keys[0]
                y = z["y"] if "y" in keys and key != "y" else None
                return z[key], y
        return _read_csv(path, columns), None
    except DataError:
        raise
    except Exception as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "allow_pickle" in msg:
            msg = "it holds Python objects (dtype object), not a numeric array"
        raise DataError(f"cannot read data file {str(path)!r}: {msg}") from None


def looks_like_images(x: torch.Tensor) -> bool:
    """Rows of shape (H, W), or (C, H, W) with 1 or 3 channels."""
    return x.dim() == 3 or (x.dim() == 4 and x.shape[1] in (1, 3))


def suggest_likelihood(x: torch.Tensor) -> str:
    """The default likelihood for data ``x`` (N, ...): Bernoulli for binary data and
    for images with values in [0, 1], Gaussian otherwise. One rule for the CLI and
    the Python API."""
    binary = bool(((x == 0) | (x == 1)).all())
    return "bernoulli" if binary or (looks_like_images(x) and _in_unit(x)) else "gaussian"


def load_file(path: str | Path, columns=None) -> RawData:
    """Load the user's ``.npy`` / ``.npz`` / ``.csv`` array, optionally only some columns
    (CSV header names or 0-based indices; indices only for 2-D arrays)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file {str(path)!r} does not exist")
    if path.suffix.lower() not in FILE_SUFFIXES:
        raise DataError(
            f"cannot read data file {str(path)!r}: unsupported type "
            f"{path.suffix or '(none)'}; use {', '.join(FILE_SUFFIXES)}"
        )
    arr, y = _read_file(path, columns)
    if columns and path.suffix.lower() != ".csv":
        if np.ndim(arr) != 2:
            raise DataError(
                f"columns can only be chosen from 2-D data; {path.name!r} has shape {np.shape(arr)}"
            )
        idx = _column_indices(columns, None, path)
        if max(idx) >= arr.shape[1] or min(idx) < -arr.shape[1]:
            raise DataError(
                f"column index out of range for {path.name!r} with {arr.shape[1]} columns"
            )
        arr = arr[:, idx]
    x = as_data_tensor(arr, name=f"data file {path.name!r}")
    is_image = looks_like_images(x)
    if x.dim() == 3:
        x = x.unsqueeze(1)
    labels = None
    if y is not None:
        labels = torch.as_tensor(np.asarray(y))
        if labels.shape[0] != x.shape[0]:
            raise DataError(
                f"labels 'y' in {str(path)!r} have {labels.shape[0]} rows but the data has "
                f"{x.shape[0]}"
            )
    return RawData(
        x=x,
        y=labels,
        is_image=is_image,
        likelihood=suggest_likelihood(x),
    )


def load_raw(spec: str, root=None, download: bool = True, columns=None) -> RawData:
    """A named dataset or a file, unsplit and unscaled."""
    spec = str(spec)
    if spec in DATASETS:
        return DATASETS.get(spec)(root=root, download=download)
    if Path(spec).suffix.lower() in FILE_SUFFIXES or os.sep in spec or Path(spec).exists():
        return load_file(spec, columns)
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
    """
    if columns and spec in DATASETS:
        raise DataError(f"columns apply to data files, not to the dataset {spec!r}")
    raw = load_raw(spec, root=root, download=download, columns=columns)
    gen = torch.Generator().manual_seed(int(split_seed))
    x, y = raw.x, raw.y
    perm = torch.randperm(x.shape[0], generator=gen)
    x = x[perm]
    y = y[perm] if y is not None else None
    if raw.x_test is not None:
        x_test, y_test = raw.x_test, raw.y_test
    else:
        n_test = _split_sizes(x.shape[0], test_fraction, "test")
        x_test, y_test = x[:n_test], (y[:n_test] if y is not None else None)
        x, y = x[n_test:], (y[n_test:] if y is not None else None)
    if raw.x_val is not None:  # an official validation split
        x_val, y_val = raw.x_val, None
    else:
        n_val = _split_sizes(x.shape[0], val_fraction, "validation")
        x_val, y_val = x[:n_val], (y[:n_val] if y is not None else None)
        x, y = x[n_val:], (y[n_val:] if y is not None else None)
    if x.shape[0] == 0:
        raise DataError(f"data {spec!r} leaves no rows for training after the held-out splits")
    scaler = Scaler(scale).fit(x)
    train, val, test = scaler.transform(x), scaler.transform(x_val), scaler.transform(x_test)
    from .binarize import BINARIZATIONS

    train, val, test, train_transform = BINARIZATIONS.get(binarize)(train, val, test, gen)
    likelihood = "bernoulli" if binarize != "none" else raw.likelihood
    if likelihood == "bernoulli" and not all(_in_unit(t) for t in (train, val, test)):
        likelihood = "gaussian"  # scaling moved the data out of [0, 1]
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
    )


def _in_unit(x: torch.Tensor) -> bool:
    return bool(((x >= 0) & (x <= 1)).all())
