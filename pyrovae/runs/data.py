"""A run's data: what a checkpoint records about the data it was trained on, and
loading that data again, split and scaled as in training.

``pyrovae train`` loads its data with :func:`load_config_data` (which logs the advice
of :func:`pyrovae.data.advice.advise`) and records :func:`data_info` in every
checkpoint (the data options, absolute paths, the fitted scaler's state, the features'
names and the label classes); ``evaluate``, ``sample``, ``analyze``, ``select``,
``compare``, ``report`` and ``--resume`` load the data back with :func:`load_run_data`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..config import DATA_KEYS
from ..data import DATASETS, DataSplits, Scaler, load_data
from ..data.advice import advise
from ..errors import ConfigError, DataError


def load_options(info: dict[str, Any], spec: str | None = None) -> dict[str, Any]:
    """The keyword arguments of :func:`~pyrovae.data.load_data` for the data options
    ``info`` (a run configuration, or what a checkpoint records), loading ``spec``
    instead of ``info["data"]`` when given."""
    data = spec or info["data"]
    return dict(
        spec=data,
        root=info.get("data_root"),
        scale=info.get("scale", "none"),
        val_fraction=info.get("val_fraction", 0.1),
        test_fraction=info.get("test_fraction", 0.1),
        split_seed=info.get("split_seed", 0),
        download=info.get("download", True),
        binarize=info.get("binarize", "none"),
        columns=info.get("columns") or None,
        drop_columns=info.get("drop_columns") or None,
        label_column=info.get("label_column"),
        classes=info.get("classes"),
        condition_columns=info.get("condition_columns") or None,
        n_labels=info.get("n_labels"),
        label_fraction=info.get("label_fraction"),
        # a dataset's own options (--data-options) apply to that dataset only
        data_options=(info.get("data_options") or None) if data == info.get("data") else None,
        # a streamed run streams its own data, and other data given as a .npy file
        stream=bool(info.get("stream")) and Path(data).suffix == ".npy",
        missing=info.get("missing", "refuse") == "mask",
    )


def load_config_data(cfg: dict[str, Any], given=(), advice: bool = True) -> DataSplits:
    """The data of a run about to be trained with configuration ``cfg``, split and scaled;
    with ``advice``, log :func:`~pyrovae.data.advice.advise`'s notices and warnings.

    Parameters
    ----------
    cfg : dict
        The resolved options (:func:`pyrovae.config.resolve`).
    given : collection of str
        The options the user set (a flag or a config-file key): a chosen ``scale``, even
        ``none``, silences the scaling warning.
    advice : bool
        Log the advice (one process of a data-parallel run speaks for all).
    """
    data = load_data(**{**load_options(cfg), "stream": bool(cfg.get("stream"))})
    if advice:
        advise(
            data,
            likelihood=cfg.get("likelihood"),
            scale_given="scale" in given,
            val_fraction=cfg.get("val_fraction", 0.1),
        )
    return data


def data_info(cfg: dict[str, Any], data: DataSplits) -> dict[str, Any]:
    """What a checkpoint records about its data: the data options of ``cfg`` (file paths
    made absolute, so that the run's verbs work from any folder), whether the rows are
    images, and the state of the fitted scaler."""
    info = {k: cfg[k] for k in DATA_KEYS}
    if cfg["data"] not in DATASETS and Path(cfg["data"]).is_file():
        info["data"] = str(Path(cfg["data"]).resolve())
    if cfg["data_root"] is not None:
        info["data_root"] = str(Path(cfg["data_root"]).resolve())
    info.update(is_image=data.is_image, scaler=data.scaler.state_dict())
    info["missing"] = cfg.get("missing", "refuse")
    if data.feature_names is not None:
        info["feature_names"] = list(data.feature_names)
    if data.classes is not None:
        info["classes"] = list(data.classes)
    if data.condition_names is not None:
        info["condition_names"] = list(data.condition_names)
    return info


def load_run_data(info: dict[str, Any], spec: str | None = None) -> DataSplits:
    """The run's data (or ``spec``), split as in training and scaled with the run's own
    fitted scaler, so that other data given with ``--data`` is put in the model's units.

    Parameters
    ----------
    info : dict
        What the checkpoint records about its data (:func:`data_info`).
    spec : str, optional
        A dataset name or file to load instead of the run's own data.

    Raises
    ------
    ConfigError
        The checkpoint records no data (trained with the Python API) and no ``spec``.
    DataError
        ``spec`` has rows of another shape than the run's data.
    """
    if spec is None and "data" not in info:
        raise ConfigError("this checkpoint does not record its data; pass --data")
    state = info.get("scaler")
    options = load_options(info, spec)
    if state:
        options["scale"] = "none"  # the run's own fitted scaler is applied below
    data = load_data(**options)
    names = info.get("feature_names")
    if names is not None and len(names) == math.prod(data.data_shape):
        # the run's features, in the run's words (other data given with --data are
        # put in the run's units, and named as the run's features)
        data.feature_names = list(names)
    if state and state.get("shift") is not None:
        scaler = Scaler.from_state(state)
        if tuple(scaler.shift.shape) != data.data_shape:
            raise DataError(
                f"data {data.name!r} has rows of shape {data.data_shape}; the run was "
                f"trained on rows of shape {tuple(scaler.shift.shape)}"
            )
        data.train, data.val, data.test = (
            scaler.transform(t) for t in (data.train, data.val, data.test)
        )
        data.scaler = scaler
    return data
