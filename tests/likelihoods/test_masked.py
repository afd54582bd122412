"""Masked scoring of every registered likelihood: log p(x_obs | z) over the observed
entries, one event per row (pyrovae.likelihoods.base.MaskedEvent).

The reference is the same likelihood built for the observed sub-vector alone (its
per-feature parameters cut to the observed features) and scored directly; the two
sums of the same float32 terms agree to rounding (rtol 1e-5)."""

from __future__ import annotations

import pytest
import torch

from pyrovae.likelihoods import LIKELIHOODS

D = 6


def _data(kind: str, shape, g) -> torch.Tensor:
    if kind == "binary":
        return (torch.rand(shape, generator=g) > 0.5).float()
    if kind == "unit":
        return torch.rand(shape, generator=g)
    if kind == "open-unit":
        return 0.01 + 0.98 * torch.rand(shape, generator=g)
    if kind == "8bit":
        return torch.randint(0, 256, shape, generator=g).float() / 255
    if kind == "count":
        return torch.randint(0, 12, shape, generator=g).float()
    return torch.randn(shape, generator=g)


def _setup(name: str, rows: int = 4):
    g = torch.Generator().manual_seed(3)
    lik = LIKELIHOODS.get(name)((D,))
    with torch.no_grad():  # move learned parameters off their defaults
        for p in lik.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    params = 0.7 * torch.randn(rows, lik.param_channels, D, generator=g)
    x = _data(lik.support_kind, (rows, D), g)
    mask = torch.rand(rows, D, generator=g) > 0.4
    mask[:, 0] |= ~mask.any(1)  # every row observed somewhere
    mask[1] = True  # one fully observed row
    return lik, params, x, mask


def _sub_likelihood(lik, name: str, observed: torch.Tensor):
    """The likelihood of the observed features alone, per-feature parameters cut."""
    sub = LIKELIHOODS.get(name)((int(observed.sum()),))
    state = {k: (v[observed] if tuple(v.shape) == (D,) else v) for k, v in lik.state_dict().items()}
    sub.load_state_dict(state)
    return sub


@pytest.mark.parametrize("name", LIKELIHOODS.names())
def test_masked_log_prob_is_the_log_prob_of_the_observed_sub_vector(name):
    lik, params, x, mask = _setup(name)
    x_nan = torch.where(mask, x, torch.full_like(x, float("nan")))
    got = lik.masked(lik(params), mask).log_prob(x_nan)
    assert got.shape == (x.shape[0],)
    for n in range(x.shape[0]):
        o = mask[n]
        sub = _sub_likelihood(lik, name, o)
        want = sub(params[n : n + 1][..., o]).log_prob(x[n : n + 1, o])[0]
        torch.testing.assert_close(got[n], want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", LIKELIHOODS.names())
def test_all_observed_mask_is_the_unmasked_log_prob(name):
    lik, params, x, _ = _setup(name)
    full = torch.ones_like(x, dtype=torch.bool)
    torch.testing.assert_close(
        lik.masked(lik(params), full).log_prob(x), lik(params).log_prob(x), rtol=1e-5, atol=1e-5
    )
    assert lik.masked(lik(params), None).log_prob(x).shape == (x.shape[0],)


@pytest.mark.parametrize("name", LIKELIHOODS.names())
def test_nan_filled_missing_entries_give_finite_values_and_gradients(name):
    lik, params, x, mask = _setup(name)
    params.requires_grad_(True)
    x_nan = torch.where(mask, x, torch.full_like(x, float("nan")))
    lp = lik.masked(lik(params), mask).log_prob(x_nan)
    assert torch.isfinite(lp).all()
    lp.sum().backward()
    assert torch.isfinite(params.grad).all()
    assert (params.grad[..., ~mask.any(0)] == 0).all()  # features nobody observed: no signal
    for p in lik.parameters():
        assert p.grad is None or torch.isfinite(p.grad).all()


def test_masked_distribution_broadcasts_over_particles():
    lik = LIKELIHOODS.get("gaussian")((D,))
    params = torch.randn(5, 3, 1, D)  # (particles, rows, channels, D)
    x = torch.randn(3, D)
    mask = torch.rand(3, D) > 0.5
    mask[:, 0] = True
    lp = lik.masked(lik(params), mask).log_prob(x)
    assert lp.shape == (5, 3)
    d = lik.masked(lik(params[0]), mask).expand((5, 3))
    assert d.batch_shape == (5, 3) and d.event_shape == (D,)
