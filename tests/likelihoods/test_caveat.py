"""Likelihoods warn about data inside their support on which log p(x|z) is not a
normalised log-likelihood: only the Bernoulli, which accepts grey levels in [0, 1] as
a cross-entropy objective but normalises only on {0, 1} (see test_normalization.py)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from pyrovae.api import VAE
from pyrovae.data import MemmapArray
from pyrovae.data.validation import warn_caveat
from pyrovae.errors import DataError
from pyrovae.likelihoods import LIKELIHOODS

#: Data on each support kind's normalised support (the grids of test_normalization.py).
ON_SUPPORT = {
    "binary": [[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]],
    "8bit": [[0.0, 17 / 255, 1.0], [128 / 255, 1 / 255, 254 / 255]],
    "count": [[0.0, 3.0, 250.0], [1.0, 0.0, 7.0]],
    "unit": [[0.0, 0.3, 1.0], [0.5, 0.999, 0.25]],
    "open-unit": [[0.1, 0.5, 0.9], [0.001, 0.3, 0.999]],
    "real": [[-2.0, 0.0, 3.5], [100.0, -0.25, 1e-3]],
}

GREY = torch.tensor([[0.0, 0.5, 1.0], [0.25, 1.0, 0.0]])


@pytest.mark.parametrize("name", LIKELIHOODS.names())
def test_no_caveat_on_the_normalised_support(name):
    lik = LIKELIHOODS.get(name)((3,))
    x = torch.tensor(ON_SUPPORT[lik.support_kind])
    assert bool(lik.in_support(x).all())
    assert lik.caveat(x) is None


@pytest.mark.parametrize("name", LIKELIHOODS.names())
def test_a_caveat_exactly_where_the_support_is_wider_than_the_normalised_one(name):
    """Grey levels: inside the Bernoulli's support [0, 1] but off {0, 1}; every other
    likelihood either normalises on them or refuses them (validate)."""
    lik = LIKELIHOODS.get(name)((3,))
    if not bool(lik.in_support(GREY).all()):
        with pytest.raises(DataError, match="lie outside it"):
            lik.validate(GREY)  # refused, never trained on
        return
    message = lik.caveat(GREY)
    if lik.support_kind == "binary":
        assert message.startswith("the bernoulli likelihood meets data that are not binary")
        assert "--likelihood continuous-bernoulli" in message and "--binarize" in message
    else:
        assert message is None


def test_warn_caveat_logs_it_once_and_reads_a_stream_in_chunks(tmp_path, caplog):
    lik = LIKELIHOODS.get("bernoulli")((3,))
    np.save(tmp_path / "grey.npy", GREY.numpy())
    np.save(tmp_path / "binary.npy", np.array(ON_SUPPORT["binary"], dtype=np.float32))
    with caplog.at_level(logging.WARNING, logger="pyrovae"):
        assert warn_caveat(lik, MemmapArray(tmp_path / "binary.npy")) is None
        assert caplog.records == []
        message = warn_caveat(lik, MemmapArray(tmp_path / "grey.npy"))
    assert [r.getMessage() for r in caplog.records] == [message]


def test_fitting_a_bernoulli_on_grey_levels_warns(small_digits, caplog):
    x = small_digits[0][:64]
    fit = dict(epochs=1, hidden=(8,), latent_dim=2, likelihood="bernoulli", batch_size=64)
    with caplog.at_level(logging.WARNING, logger="pyrovae"):
        VAE(**fit).fit(x)
    assert [r.getMessage()[:56] for r in caplog.records] == [
        "the bernoulli likelihood meets data that are not binary "
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pyrovae"):
        VAE(**fit).fit((x > 0.5).float())
    assert caplog.records == []
