"""Static and dynamic binarization: supports, fresh draws each epoch, exact resume."""

from __future__ import annotations

import pytest
import torch

from pyrovae.api import VAE, resume
from pyrovae.data import load_data
from pyrovae.data.binarize import draw_bernoulli
from pyrovae.errors import DataError


def _binary(t):
    return bool(((t == 0) | (t == 1)).all())


def test_static_thresholds_every_split():
    d = load_data("digits", binarize="static")
    assert all(_binary(t) for t in (d.train, d.val, d.test))
    assert d.train_transform is None and d.likelihood == "bernoulli"


def test_dynamic_draws_fresh_training_batches():
    d = load_data("digits", binarize="dynamic")
    again = load_data("digits", binarize="dynamic")
    assert not _binary(d.train) and _binary(d.val) and _binary(d.test)
    assert torch.equal(d.val, again.val)  # held-out draws are fixed by the split seed
    g = torch.Generator().manual_seed(0)
    a, b = d.train_transform(d.train, g), d.train_transform(d.train, g)
    assert _binary(a) and not torch.equal(a, b)
    # a draw has the grey levels as its mean: 1,455 images x 64 pixels, 5 s.e.
    many = torch.stack([draw_bernoulli(d.train[:50], g) for _ in range(400)]).mean(0)
    assert (many - d.train[:50]).abs().max() < 5 * 0.5 / 400**0.5


def test_binarizing_needs_unit_interval(tmp_path):
    import numpy as np

    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(40, 3)))
    with pytest.raises(DataError, match="dynamic binarization needs data in \\[0, 1\\]"):
        load_data(str(tmp_path / "x.npy"), binarize="dynamic")


def test_dynamic_training_resumes_exactly(tmp_path):
    d = load_data("digits", binarize="dynamic")
    x, xv = d.train[:300], d.val[:100]
    kw = dict(hidden=(32,), latent_dim=2, batch_size=64)
    straight = VAE(epochs=4, **kw).fit(
        x, X_val=xv, run_dir=tmp_path / "a", train_transform=d.train_transform
    )
    VAE(epochs=2, **kw).fit(x, X_val=xv, run_dir=tmp_path / "b", train_transform=d.train_transform)
    resumed = resume(tmp_path / "b", x, xv, epochs=4, train_transform=d.train_transform)

    def losses(h):
        return [{k: v for k, v in r.items() if k not in ("seconds", "cpu_seconds")} for r in h]

    assert losses(resumed.history_) == losses(straight.history_)
