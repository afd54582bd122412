"""The registry: lookup, errors with suggestions, building by name or object."""

from __future__ import annotations

import pytest

from pyrovae.errors import ConfigError, RegistryError
from pyrovae.registry import Registry


def test_register_and_get():
    reg = Registry("thing")

    @reg.register("alpha")
    class Alpha:
        pass

    assert reg.get("alpha") is Alpha
    assert Alpha.registry_name == "alpha"
    assert "alpha" in reg and reg.names() == ["alpha"] and len(reg) == 1


def test_unknown_name_is_one_line_with_suggestion():
    reg = Registry("prior")
    reg.register("normal")(type("N", (), {}))
    reg.register("laplace")(type("L", (), {}))
    with pytest.raises(RegistryError) as info:
        reg.get("normall")
    msg = str(info.value)
    assert "unknown prior 'normall'" in msg and "did you mean 'normal'" in msg
    assert "laplace" in msg and "\n" not in msg
    assert isinstance(info.value, ConfigError)


def test_duplicate_registration_rejected():
    reg = Registry("thing")
    reg.register("a")(type("A", (), {}))
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a")(type("B", (), {}))


def test_build_passes_objects_through():
    reg = Registry("thing")
    reg.register("pair")(lambda a, b=2: (a, b))
    assert reg.build("pair", 1, b=3) == (1, 3)
    obj = object()
    assert reg.build(obj) is obj
