"""The flow (IAF) guide's Monte Carlo moments."""

from __future__ import annotations

import torch

from pyrovae.guides import flow
from pyrovae.guides.flow import IAFGuide


def test_moments_are_chunked_and_match_a_large_sample(monkeypatch):
    torch.manual_seed(0)
    guide = IAFGuide(in_features=6, latent_dim=3)
    q = guide(torch.randn(5, 6))
    # 7 latent vectors per chunk: 1 draw of the 5 rows at a time, 1000 chunks
    monkeypatch.setattr(flow, "MOMENT_CHUNK_ROWS", 7)
    calls = []
    sample = type(q).sample
    monkeypatch.setattr(
        type(q), "sample", lambda self, shape=(): calls.append(shape) or sample(self, shape)
    )
    torch.manual_seed(1)
    mean, var = q.mean, q.variance
    assert len(calls) == 2 * flow.MOMENT_SAMPLES and set(calls) == {(1,)}
    monkeypatch.undo()
    with torch.no_grad():
        z = q.sample((200_000,))
    assert mean.shape == var.shape == (5, 3) and mean.dtype == torch.float32
    # Monte Carlo error of a 1000-draw mean: sd / sqrt(1000); allow 5 standard errors
    se = z.std(0) / flow.MOMENT_SAMPLES**0.5
    assert ((mean - z.mean(0)).abs() < 5 * se).all()
    # and of the variance: about var * sqrt(2 / 1000) for near-Normal draws
    assert ((var - z.var(0)).abs() < 5 * z.var(0) * (2 / flow.MOMENT_SAMPLES) ** 0.5).all()
