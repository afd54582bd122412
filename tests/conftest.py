"""Shared fixtures: small slices of the built-in digits and generated data."""

from __future__ import annotations

import pyro
import pytest
import torch

from pyrovae.data import load_data


@pytest.fixture(autouse=True)
def _fresh_pyro_state():
    """Each test starts from a clean param store and a fixed seed."""
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    yield


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
