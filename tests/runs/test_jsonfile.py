"""The run folder's JSON files: strict JSON, written atomically."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import torch

from pyrovae.runs import read_json, to_json, write_json
from pyrovae.runs.jsonfile import plain


def _strict(text: str):
    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_numbers_become_null():
    value = {"elbo": math.nan, "x": [math.inf, -math.inf, 1.5], 3: "int key"}
    assert _strict(to_json(value)) == {"elbo": None, "x": [None, None, 1.5], "3": "int key"}


def test_tensors_and_numpy_values_become_python():
    value = {"t": torch.tensor([1.0, float("nan")]), "n": np.float32(0.25), "a": np.arange(2)}
    assert plain(value) == {"t": [1.0, None], "n": 0.25, "a": [0, 1]}
    assert _strict(to_json({"path": torch.device("cpu")})) == {"path": "cpu"}  # str()


def test_write_and_read(tmp_path, caplog):
    path = write_json(tmp_path / "evaluation.json", {"elbo": -1.0, "kl": math.nan})
    assert path.read_text().endswith("}\n")
    assert read_json(path) == {"elbo": -1.0, "kl": None}
    assert [p.name for p in tmp_path.iterdir()] == ["evaluation.json"]  # no temporary
    assert read_json(tmp_path / "missing.json") is None
    (tmp_path / "list.json").write_text("[1, 2]")
    assert read_json(tmp_path / "list.json") is None  # not an object
    (tmp_path / "bad.json").write_text("{")
    with caplog.at_level(logging.WARNING, logger="pyrovae"):
        assert read_json(tmp_path / "bad.json") is None
    assert "cannot read" in caplog.text
