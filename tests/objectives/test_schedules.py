"""Beta schedules: values, positivity, settling, errors."""

from __future__ import annotations

import pytest

from pyrovae.errors import ConfigError
from pyrovae.objectives import SCHEDULES, Constant, Cyclical, LinearWarmup, make_schedule


def test_constant():
    s = Constant(beta=4.0)
    assert s(0.1) == 4.0 and s(100) == 4.0 and s.settled(0)


def test_linear_warmup():
    s = LinearWarmup(beta=2.0, warmup=10)
    assert s(5) == pytest.approx(1.0)
    assert s(10) == 2.0 and s(30) == 2.0
    assert not s.settled(9.5) and s.settled(10)


def test_cyclical():
    s = Cyclical(beta=1.0, warmup=4, ratio=0.5)
    assert s(1) == pytest.approx(0.5)
    assert s(2) == 1.0 and s(3.9) == 1.0
    assert s(5) == pytest.approx(0.5)  # next cycle restarts the ramp
    assert not s.settled(100)


@pytest.mark.parametrize("name", SCHEDULES.names())
def test_every_schedule_is_positive_and_bounded(name):
    s = SCHEDULES.get(name)(beta=3.0, warmup=2.0)
    for t in [0.0, 1e-9, 0.01, 0.5, 1, 2, 3.3, 10]:
        assert 0 < s(t) <= 3.0


@pytest.mark.parametrize("bad", [0, -1.0])
def test_beta_must_be_positive(bad):
    with pytest.raises(ConfigError, match="beta must be a finite number > 0"):
        make_schedule(bad)


def test_warmup_must_be_positive():
    with pytest.raises(ConfigError, match="beta_warmup > 0"):
        make_schedule(1.0, "linear", 0)


def test_make_schedule_passes_objects_and_rejects_junk():
    s = Cyclical(2.0, 3.0)
    assert make_schedule(s) is s
    with pytest.raises(ConfigError):
        make_schedule("lots")
