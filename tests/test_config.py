"""The option table, TOML config files and value coercion."""

from __future__ import annotations

import pytest

from pyrovae.config import (
    DATA_KEYS,
    ESTIMATOR_KEYS,
    OPTIONS,
    OPTIONS_BY_NAME,
    check_keys,
    coerce,
    defaults,
    load_toml,
    resolve,
)
from pyrovae.errors import ConfigError
from pyrovae.runs import to_toml


def test_option_table_is_consistent():
    names = [o.name for o in OPTIONS]
    assert len(names) == len(set(names))
    assert set(DATA_KEYS) | set(ESTIMATOR_KEYS) == set(names)
    for opt in OPTIONS:
        assert opt.flag == "--" + opt.name.replace("_", "-")
        assert opt.help and opt.group in ("data", "model", "training")


def test_every_default_parses_to_itself():
    for name, value in defaults().items():
        assert coerce(name, value) == value, name


def test_defaults_are_fresh_copies():
    a = defaults()
    a["hidden"].append(7)
    a["prior_options"]["x"] = 1
    assert defaults()["hidden"] == [400] and defaults()["prior_options"] == {}


@pytest.mark.parametrize(
    "registry_option", [o for o in OPTIONS if o.registry], ids=lambda o: o.name
)
def test_registry_defaults_are_registered(registry_option):
    import importlib

    mod, name = registry_option.registry.rsplit(".", 1)
    registry = getattr(importlib.import_module(mod), name)
    default = registry_option.default
    for name in default if isinstance(default, list) else [default] if default else []:
        assert name in registry


def test_resolve_layers_in_order():
    cfg = resolve({"latent_dim": 4, "beta": 2}, {"latent_dim": "8"})
    assert cfg["latent_dim"] == 8 and cfg["beta"] == 2.0 and isinstance(cfg["beta"], float)
    assert cfg["epochs"] == OPTIONS_BY_NAME["epochs"].default


@pytest.mark.parametrize(
    ("key", "hint"),
    [("latent_dimm", "latent_dim"), ("learningrate", "learning_rate"), ("xyzzy", None)],
)
def test_unknown_keys_name_the_key_and_suggest(key, hint):
    with pytest.raises(ConfigError) as info:
        check_keys(["epochs", key], "option")
    msg = str(info.value)
    assert f"unknown option key {key!r}" in msg
    assert (f"did you mean {hint!r}?" in msg) if hint else ("did you mean" not in msg)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("epochs", "12", 12),
        ("epochs", 12.0, 12),
        ("beta", "0.5", 0.5),
        ("beta", 2, 2.0),
        ("hidden", "64,32", [64, 32]),
        ("hidden", "64 32", [64, 32]),
        ("hidden", 16, [16]),
        ("hidden", [8, 4], [8, 4]),
        ("download", "no", False),
        ("download", True, True),
        ("likelihood_options", ["scale=0.5", "name=abc"], {"scale": 0.5, "name": "abc"}),
        ("likelihood_options", {"scale": 0.5}, {"scale": 0.5}),
        ("device", "cpu", "cpu"),
        ("data_root", None, None),
    ],
)
def test_values_are_coerced(name, value, expected):
    out = coerce(name, value)
    assert out == expected and type(out) is type(expected)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("epochs", "abc", "expected an integer; got 'abc'"),
        ("epochs", 2.5, "expected an integer; got 2.5"),
        ("epochs", True, "expected an integer; got True"),
        ("epochs", [1, 2], "expected an integer"),
        ("beta", "x", "expected a number; got 'x'"),
        ("beta", "nan", "expected a finite number"),
        ("learning_rate", float("inf"), "expected a finite number"),
        ("beta", False, "expected a number"),
        ("hidden", "a,b", "expected a list of integers"),
        ("hidden", [32.5], "expected a list of integers"),
        ("hidden", True, "expected a list of integers"),
        ("download", "maybe", "expected true or false; got 'maybe'"),
        ("download", 1, "expected true or false"),
        ("model", {"latent_dim": 3}, "expected a string"),
        ("prior", 3, "expected a string"),
        ("likelihood_options", ["scale"], "KEY=VALUE; got 'scale'"),
        ("likelihood_options", 3, "table or KEY=VALUE"),
        ("device", "foo", "expected a torch device"),
    ],
)
def test_bad_values_are_one_line_errors_naming_the_option(name, value, expected):
    with pytest.raises(ConfigError) as info:
        coerce(name, value)
    msg = str(info.value)
    assert msg.startswith(f"option {name!r}") and expected in msg and "\n" not in msg


def test_unavailable_cuda_device_is_refused():
    import torch

    if torch.cuda.is_available():
        assert coerce("device", "cuda") == "cuda"
        with pytest.raises(ConfigError, match="CUDA device"):
            coerce("device", f"cuda:{torch.cuda.device_count()}")
    else:
        with pytest.raises(ConfigError, match="CUDA is not available"):
            coerce("device", "cuda")


# -- TOML files -----------------------------------------------------------------------


def test_load_toml(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        'data = "x.csv"\nlatent_dim = 4\nhidden = [64, 32]\nbeta = 2\n'
        "download = false\n\n[likelihood_options]\nscale = 0.3\n"
    )
    cfg = load_toml(path)
    assert cfg == {
        "data": "x.csv",
        "latent_dim": 4,
        "hidden": [64, 32],
        "beta": 2.0,
        "download": False,
        "likelihood_options": {"scale": 0.3},
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("latent_dimm = 3\n", "unknown config file 'c.toml' key 'latent_dimm' (did you mean "),
        ("[model]\nlatent_dim = 3\n", "option 'model': expected a string"),
        ("latent_dim = 'abc'\n", "option 'latent_dim': expected an integer; got 'abc'"),
        ("epochs = 1.5\n", "option 'epochs': expected an integer; got 1.5"),
        ("beta = true\n", "option 'beta': expected a number"),
        ("latent_dim = \n", "c.toml' is not valid TOML: Invalid value"),
        ("latent_dim = 3\nlatent_dim = 4\n", "is not valid TOML"),
    ],
)
def test_bad_toml_files(tmp_path, text, expected):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_toml(path)
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_missing_or_unreadable_toml(tmp_path):
    with pytest.raises(ConfigError, match="config file .*nope.toml' does not exist"):
        load_toml(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_toml(tmp_path)


def test_written_config_reads_back_the_same(tmp_path):
    cfg = resolve(
        {
            "data": 'a "quoted" path.csv',
            "hidden": [16, 8],
            "likelihood": "gaussian",
            "likelihood_options": {"scale": 0.25},
            "beta": 0.5,
            "download": False,
        }
    )
    path = tmp_path / "config.toml"
    path.write_text(to_toml(cfg))
    back = resolve(load_toml(path))
    assert back == cfg
