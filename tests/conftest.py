"""Shared fixtures: small slices of the built-in digits and generated data, a fake
clock for time budgets, and a guard against global state leaking between tests."""

from __future__ import annotations

import contextlib
import os
from types import SimpleNamespace

import pyro
import pytest
import torch

from pyrovae.data import load_data
from pyrovae.training.trainer import CLOCKS

#: Environment variables that change how torch or pyrovae run (threads, and the
#: torchrun variables that make pyrovae join a process group); a test may change them
#: only through ``monkeypatch``.
GUARDED_ENV = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
    "TORCHELASTIC_USE_AGENT_STORE",
)


class LeakedStateError(AssertionError):
    """A test left process-wide state changed."""


def _global_state() -> dict:
    return {
        "torch threads": torch.get_num_threads(),
        "torch default dtype": torch.get_default_dtype(),
        "torch grad mode": torch.is_grad_enabled(),
        **{f"${name}": os.environ.get(name) for name in GUARDED_ENV},
    }


@contextlib.contextmanager
def restoring_global_state():
    """Restore torch's thread count, default dtype, grad mode and :data:`GUARDED_ENV`
    on exit, and raise :class:`LeakedStateError` naming whatever the body changed."""
    before = _global_state()
    try:
        yield
    finally:
        after = _global_state()
        changed = [k for k in before if before[k] != after[k]]
        if "torch threads" in changed:
            torch.set_num_threads(before["torch threads"])
        torch.set_default_dtype(before["torch default dtype"])
        torch.set_grad_enabled(before["torch grad mode"])
        for name in GUARDED_ENV:
            value = before[f"${name}"]
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    if changed:
        changed = [f"{k}: {before[k]!r} -> {after[k]!r}" for k in changed]
        raise LeakedStateError("the test left global state changed: " + "; ".join(changed))


@pytest.fixture(autouse=True)
def _no_leaked_global_state():
    """Every test leaves torch's threads, default dtype, grad mode and the guarded
    environment as it found them (restored either way; a leak fails the test)."""
    with restoring_global_state():
        yield


@pytest.fixture(autouse=True)
def _fresh_pyro_state():
    """Each test starts from a clean param store and a fixed seed."""
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    yield


class FakeClock:
    """A clock that advances ``tick`` seconds each time it is read, so that a time
    budget is a number of reads: the trainer reads its budget clock once when training
    starts, once after every optimizer step, at every checkpoint and once at the end,
    whatever the machine's speed.

    Attributes
    ----------
    tick : float
        Seconds added per read (may be changed by a test).
    now : float
        The time the last read returned.
    reads : int
        Number of reads so far.
    """

    def __init__(self, tick: float = 1.0) -> None:
        self.tick, self.now, self.reads = float(tick), 0.0, 0

    def __call__(self) -> float:
        self.reads += 1
        self.now += self.tick
        return self.now


@pytest.fixture
def fake_clock(monkeypatch):
    """Replace the trainer's budget clocks by two :class:`FakeClock` (one "second" per
    read): ``fake_clock.wall`` and ``fake_clock.cpu``."""
    clocks = SimpleNamespace(wall=FakeClock(), cpu=FakeClock())
    monkeypatch.setitem(CLOCKS, "wall", clocks.wall)
    monkeypatch.setitem(CLOCKS, "cpu", clocks.cpu)
    return clocks


@pytest.fixture(scope="session")
def digits():
    """The built-in digits, split (1,455 / 162 / 180), shape (1, 8, 8) in [0, 1]."""
    return load_data("digits")


@pytest.fixture(scope="session")
def small_digits(digits):
    """(train, val): 300 and 100 digit images, for quick training runs."""
    return digits.train[:300], digits.val[:100]


@pytest.fixture
def tabular():
    """Generated continuous data: 200 rows, 5 correlated features."""
    g = torch.Generator().manual_seed(1)
    z = torch.randn(200, 2, generator=g)
    w = torch.randn(2, 5, generator=g)
    return z @ w + 0.1 * torch.randn(200, 5, generator=g)
