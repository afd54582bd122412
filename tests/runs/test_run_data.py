"""A run's data: what a checkpoint records, and loading it again split and scaled."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pyrovae.config import resolve
from pyrovae.data import load_data
from pyrovae.errors import ConfigError, DataError
from pyrovae.runs.data import data_info, load_run_data


def test_recorded_data_loads_again_identically(tmp_path):
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(50, 4))
    np.save(tmp_path / "x.npy", x)
    cfg = resolve({"data": str(tmp_path / "x.npy"), "scale": "standardize"})
    data = load_data(cfg["data"], scale=cfg["scale"])
    info = data_info(cfg, data)
    assert info["data"] == str((tmp_path / "x.npy").resolve())
    assert info["is_image"] is False and info["scaler"]["shift"] is not None
    again = load_run_data(info)
    for name in ("train", "val", "test"):
        torch.testing.assert_close(again.split(name), data.split(name), rtol=0, atol=0)
    # other data is put in the run's units: the run's scaler, not a new fit
    np.save(tmp_path / "y.npy", x + 1.0)
    other = load_run_data(info, str(tmp_path / "y.npy"))
    shift = torch.as_tensor(info["scaler"]["shift"])
    scale = torch.as_tensor(info["scaler"]["scale"])
    raw = load_data(str(tmp_path / "y.npy"), scale="none").train
    torch.testing.assert_close(other.train, (raw - shift) / scale)


def test_a_run_without_recorded_data_needs_data():
    with pytest.raises(ConfigError, match="does not record its data; pass --data"):
        load_run_data({})


def test_data_of_another_shape_is_refused(tmp_path):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(40, 4)))
    np.save(tmp_path / "y.npy", np.random.default_rng(1).normal(size=(40, 3)))
    cfg = resolve({"data": str(tmp_path / "x.npy"), "scale": "standardize"})
    info = data_info(cfg, load_data(cfg["data"], scale=cfg["scale"]))
    with pytest.raises(DataError, match=r"rows of shape \(3,\); the run was trained on rows"):
        load_run_data(info, str(tmp_path / "y.npy"))


def test_feature_names_and_classes_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    lines = ["id,width,kind,depth"] + [
        f"{i},{rng.normal():.4f},{['cat', 'dog'][i % 2]},{rng.normal():.4f}" for i in range(40)
    ]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    cfg = resolve(
        {
            "data": str(tmp_path / "t.csv"),
            "drop_columns": "id",
            "label_column": "kind",
            "scale": "standardize",
        }
    )
    data = load_data(
        cfg["data"],
        scale=cfg["scale"],
        drop_columns=cfg["drop_columns"],
        label_column=cfg["label_column"],
    )
    info = data_info(cfg, data)
    assert info["feature_names"] == ["width", "depth"] and info["classes"] == ["cat", "dog"]
    assert info["drop_columns"] == ["id"] and info["label_column"] == "kind"
    again = load_run_data(info)
    assert again.feature_names == ["width", "depth"] and again.classes == ["cat", "dog"]
    for name in ("train", "val", "test"):
        torch.testing.assert_close(again.split(name), data.split(name), rtol=0, atol=0)
        torch.testing.assert_close(again.labels(name), data.labels(name), rtol=0, atol=0)
    # the run's classes are the mapping: a file whose labels sort otherwise keeps it
    swapped = "\n".join(lines).replace("cat", "zebra") + "\n"
    (tmp_path / "u.csv").write_text(swapped)
    info["classes"] = ["zebra", "dog"]
    other = load_run_data(info, str(tmp_path / "u.csv"))
    torch.testing.assert_close(other.y_train, data.y_train, rtol=0, atol=0)


def test_other_data_without_names_are_named_as_the_run_features(tmp_path):
    x = np.random.default_rng(0).normal(size=(30, 2))
    np.savetxt(tmp_path / "named.csv", x, delimiter=",", header="u,v", comments="")
    np.save(tmp_path / "bare.npy", x)
    cfg = resolve({"data": str(tmp_path / "named.csv")})
    info = data_info(cfg, load_data(cfg["data"]))
    assert load_run_data(info, str(tmp_path / "bare.npy")).feature_names == ["u", "v"]
