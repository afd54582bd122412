"""One table of options: the Python estimators, TOML files and command-line flags
share every default and refuse the same bad values with the same message."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys

import pytest

from pyrovae.cli import build_parser
from pyrovae.config import DOMAINS, OPTIONS, OPTIONS_BY_NAME, check_value, coerce, load_toml
from pyrovae.errors import ConfigError
from pyrovae.estimators import ESTIMATORS

#: A value outside each domain, and how the command line spells it.
BAD = {
    "positive_int": (0, "0"),
    "count": (-1, "-1"),
    "positive": (0.0, "0"),
    "nonnegative": (-1.0, "-1"),
    "factor": (1.5, "1.5"),
    "seconds": (-5.0, "-5"),
    "divergence": ("explode", "explode"),
    "clock": ("sundial", "sundial"),
    "bayesian_layers": ("first", "first"),
    "missing": ("impute", "impute"),
    "rate": (1.0, "1"),
}


def _normal(value):
    """Tuples as lists; ``None`` as ``{}`` (scikit-learn's stand-in for a mutable
    default: the estimators take ``None`` where the option table holds ``{}``)."""
    if value is None:
        return {}
    return list(value) if isinstance(value, tuple) else value


def test_every_domain_has_a_bad_value():
    assert set(BAD) == set(DOMAINS)


def _estimator_defaults():
    for family in ESTIMATORS.names():
        cls = ESTIMATORS.get(family)
        for klass in cls.__mro__:
            if "__init__" not in vars(klass):
                continue
            for name, p in inspect.signature(klass.__init__).parameters.items():
                if name in OPTIONS_BY_NAME and p.default is not inspect.Parameter.empty:
                    yield family, name, p.default


@pytest.mark.parametrize(("family", "name", "default"), list(_estimator_defaults()))
def test_estimator_defaults_are_the_option_defaults(family, name, default):
    option_default = OPTIONS_BY_NAME[name].default
    if option_default is None:
        assert default is None, (family, name)
    else:
        assert _normal(default) == _normal(option_default), (family, name)


def test_every_estimator_parameter_with_a_cli_flag_is_an_option():
    for family in ESTIMATORS.names():
        for name in ESTIMATORS.get(family)().get_params():
            if name != "progress":  # --no-progress, a display setting
                assert name in OPTIONS_BY_NAME, (family, name)


@pytest.mark.parametrize(
    "option",
    [o for o in OPTIONS if o.default is not None and not isinstance(o.default, (bool, dict))],
    ids=lambda o: o.name,
)
def test_every_option_is_a_train_flag_that_reads_its_default_back(option):
    default = option.default
    text = ",".join(map(str, default)) if isinstance(default, list) else str(default)
    args = vars(build_parser().parse_args(["train", option.flag, text]))
    assert coerce(option.name, args[option.name]) == default


DOMAIN_OPTIONS = [o for o in OPTIONS if o.domain is not None]


@pytest.mark.parametrize("option", DOMAIN_OPTIONS, ids=lambda o: o.name)
def test_python_toml_and_cli_refuse_a_bad_value_alike(option, tmp_path):
    value, text = BAD[option.domain]
    expected = f"{option.name} must be {DOMAINS[option.domain][0]}; got"

    with pytest.raises(ConfigError) as py:
        check_value(option.name, value)
    assert str(py.value).startswith(expected)

    families = [f for f in ESTIMATORS.names() if option.name in ESTIMATORS.get(f)().get_params()]
    for family in families:
        with pytest.raises(ConfigError, match="^" + re.escape(expected)):
            ESTIMATORS.get(family)(**{option.name: value}).check_params()

    path = tmp_path / "c.toml"
    path.write_text(f"{option.name} = {value!r}\n".replace("'", '"'))
    with pytest.raises(ConfigError) as toml:
        load_toml(path)
    assert str(toml.value).startswith(expected)
    assert str(toml.value) == str(py.value) or isinstance(value, float)


@pytest.mark.parametrize(
    "option", [o for o in DOMAIN_OPTIONS if o.name in ("epochs", "on_divergence")]
)
def test_the_command_line_prints_the_same_message(option, tmp_path):
    _, text = BAD[option.domain]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pyrovae.cli",
            "train",
            option.flag,
            text,
            "-o",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2
    assert f"pyrovae: error: {option.name} must be {DOMAINS[option.domain][0]}; got" in out.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("option", DOMAIN_OPTIONS, ids=lambda o: o.name)
def test_the_default_lies_in_the_domain(option):
    assert check_value(option.name, option.default) == option.default
