"""config.toml: written by ``pyrovae train``, read back by ``--resume`` and the report."""

from __future__ import annotations

import logging
import math
import tomllib

import pytest

from pyrovae.config import resolve
from pyrovae.errors import ConfigError
from pyrovae.runs import read_config, read_raw_config, to_toml, write_config
from pyrovae.runs.config import has_config
from pyrovae.runs.names import CONFIG


def test_defaults_round_trip(tmp_path):
    cfg = resolve()
    path = write_config(tmp_path, cfg)
    assert path == tmp_path / CONFIG and has_config(tmp_path)
    back = read_config(tmp_path)
    # None values are left out of the file; everything else comes back equal
    assert back == {k: v for k, v in cfg.items() if v is not None and v != {}}


def test_values_of_every_kind_round_trip(tmp_path):
    cfg = resolve(
        {
            "hidden": [64, 32],
            "beta": 0.5,
            "likelihood": 'gaus"sian',
            "amp": True,
            "time_budget": 90.0,
        }
    )
    write_config(tmp_path, cfg)
    raw = read_raw_config(tmp_path)
    assert raw["hidden"] == [64, 32] and raw["beta"] == 0.5 and raw["amp"] is True
    assert raw["likelihood"] == 'gaus"sian'


def test_non_finite_numbers_are_toml():
    text = to_toml({"a": math.inf, "b": -math.inf, "c": math.nan, "t": {"x": 1}, "n": None})
    parsed = tomllib.loads(text)
    assert parsed["a"] == math.inf and parsed["b"] == -math.inf and math.isnan(parsed["c"])
    assert parsed["t"] == {"x": 1} and "n" not in parsed


def test_unwritable_value_is_refused():
    with pytest.raises(TypeError):
        to_toml({"a": object()})


def test_missing_or_broken_config(tmp_path, caplog):
    assert not has_config(tmp_path) and read_raw_config(tmp_path) is None
    with pytest.raises(ConfigError, match="does not exist"):
        read_config(tmp_path)
    (tmp_path / CONFIG).write_text("epochs = \n")
    with caplog.at_level(logging.WARNING, logger="pyrovae"):
        assert read_raw_config(tmp_path) is None
    assert "cannot read" in caplog.text
    with pytest.raises(ConfigError, match="not valid TOML"):
        read_config(tmp_path)
    (tmp_path / CONFIG).write_text("no_such_option = 1\n")
    with pytest.raises(ConfigError):
        read_config(tmp_path)
