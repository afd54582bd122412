"""Labels and conditions reach a conditional family's programs through ``Batch.y``
(``Estimator.fit(X, y)``, ``resume``); unconditional families get batches without them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pyrovae.api import VAE, resume
from pyrovae.errors import DataError
from pyrovae.models.vae import VAEModule


class _Spy:
    """Records the ``y`` of every batch the model program sees."""

    def __init__(self, monkeypatch, targets):
        self.seen: list = []
        model = VAEModule.model

        def spy(module, batch, beta=1.0):
            self.seen.append(getattr(batch, "y", None))
            return model(module, batch, beta=beta)

        monkeypatch.setattr(VAEModule, "model", spy)
        if targets is not None:
            monkeypatch.setattr(VAEModule, "targets", targets)


def _fit(x, y, **kw):
    est = VAE(latent_dim=2, hidden=(8,), epochs=2, batch_size=16, seed=0, progress=False)
    return est.fit(x, y, **kw)


def test_unconditional_family_ignores_labels(monkeypatch, tabular):
    spy = _Spy(monkeypatch, None)
    x = tabular[:40]
    _fit(x, np.array(["a", "b"] * 20))  # strings: never encoded by a family that ignores y
    assert spy.seen and all(y is None for y in spy.seen)


def test_conditional_family_reads_encoded_targets(monkeypatch, tabular, tmp_path):
    """Each batch's y belongs to its rows: here y is the first feature, so the spy can
    check the pairing in every (shuffled) training and validation batch, also on resume."""

    def targets(module, y):
        return 2.0 * torch.as_tensor(np.asarray(y), dtype=torch.float32)  # the encoding

    pairs: list = []
    model = VAEModule.model

    def spy(module, batch, beta=1.0):
        pairs.append((batch.x[:, 0].clone(), None if batch.y is None else batch.y.clone()))
        return model(module, batch, beta=beta)

    monkeypatch.setattr(VAEModule, "targets", targets)
    monkeypatch.setattr(VAEModule, "model", spy)
    x, xv = tabular[:40], tabular[40:50]
    _fit(x, x[:, 0].numpy(), X_val=xv, y_val=xv[:, 0].numpy(), run_dir=tmp_path / "run")
    assert len(pairs) > 2 and any(len(f) == 16 for f, _ in pairs)
    for first, y in pairs:
        assert y is not None and torch.equal(y, 2.0 * first)
    n_before = len(pairs)
    resume(tmp_path / "run", x, xv, epochs=3, y_train=x[:, 0].numpy(), y_val=xv[:, 0].numpy())
    assert len(pairs) > n_before
    for first, y in pairs[n_before:]:
        assert y is not None and torch.equal(y, 2.0 * first)


def test_targets_must_match_rows(monkeypatch, tabular):
    monkeypatch.setattr(VAEModule, "targets", lambda module, y: torch.as_tensor(y))
    with pytest.raises(DataError, match="y_val has 3 entries but the data has 10 rows"):
        _fit(tabular[:40], np.zeros(40), X_val=tabular[40:50], y_val=np.zeros(3))
