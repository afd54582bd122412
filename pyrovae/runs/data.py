"""A run's data: what a checkpoint records about the data it was trained on, and
loading that data again, split and scaled as in training.

``pyrovae train`` records :func:`data_info` in every checkpoint (the data options,
absolute paths, and the fitted scaler's state); ``evaluate``, ``sample``, ``analyze``,
``select``, ``compare``, ``report`` and ``--resume`` load the data back with
:func:`load_run_data`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import DATA_KEYS
from ..data import DATASETS, DataSplits, Scaler, load_data
from ..errors import ConfigError, DataError


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
    data = load_data(
        spec or info["data"],
        root=info.get("data_root"),
        scale="none" if state else info.get("scale", "none"),
        val_fraction=info.get("val_fraction", 0.1),
        test_fraction=info.get("test_fraction", 0.1),
        split_seed=info.get("split_seed", 0),
        download=info.get("download", True),
        binarize=info.get("binarize", "none"),
        columns=info.get("columns") or None,
        # the run's dataset options apply to the run's own dataset only
        data_options=info.get("data_options") if spec in (None, info.get("data")) else None,
        # a streamed run streams its own data, and other data given as a .npy file
        stream=bool(info.get("stream")) and Path(spec or info["data"]).suffix == ".npy",
    )
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
