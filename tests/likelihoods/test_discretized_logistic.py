"""The discretized logistic: bins of width 1/255 that sum to 1, exact log masses, its mean.

Reference: the float64 difference of logistic CDFs at the bin edges (k -+ 1/2)/255,
taken on the side of the location where it does not cancel (F(b) - F(a) left of it,
S(a) - S(b) right of it, S = 1 - F), at float32 parameters (cast to float64 for the
float64 case).

Tolerances come from rounding. In float32 each of the O(1) operations of ``log_prob``
rounds by at most 2^-24 relative to its operand, and the operands are at most
1 + |a| + |b| + |log m| in size (a, b the bin edges in units of the scale, m the mass),
so 16 such roundings give 2^-20 (1 + |a| + |b| + |log m|); in float64, 2^-49 times the
same. The sum of the 256 masses is then within 1e-6 of 1 in float32.
"""

from __future__ import annotations

import math

import pytest
import torch

from pyrovae.likelihoods.discrete import DiscretizedLogistic

LEVELS = torch.arange(256) / 255.0

#: locations inside, on bin edges and centres, and outside [0, 1]
LOCS = torch.cat([torch.linspace(-0.3, 1.3, 41), torch.tensor([0.5, 127.5 / 255, 0.2 / 255])])
#: log-scales from the likelihood's clamp (-7: bins 4.3 scales wide, most of the 256 bins
#: with mass below 1e-5) to far wider than the data range
LOG_SCALES = torch.tensor([-7.0, -6.0, -5.0, -4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 3.0, 6.0])


def _grid(dtype):
    loc, log_scale = torch.meshgrid(LOCS, LOG_SCALES, indexing="ij")
    return loc.reshape(-1, 1).to(dtype), log_scale.reshape(-1, 1).to(dtype)


def _reference(loc, log_scale):
    """(mass, a, b) in float64, each (n, 256): the bin masses and edges.

    The edges are (k -+ 1/2 - 255 mu) / (255 s); 255 mu and the difference are exact in
    float64 for a float32 mu (24 + 8 bits), so a and b carry one rounding each.
    """
    assert (loc.float().double() == loc.double()).all()  # a float32 mu
    k = torch.arange(256, dtype=torch.float64)
    loc, width = loc.double(), 255 * log_scale.double().exp()
    b = (k + 0.5 - 255 * loc) / width
    a = (k - 0.5 - 255 * loc) / width
    b[:, -1], a[:, 0] = math.inf, -math.inf
    left = torch.sigmoid(b) - torch.sigmoid(a)
    right = torch.sigmoid(-a) - torch.sigmoid(-b)
    return torch.where(a > 0, right, left), a, b


def _reference_error(mass, a, b):
    """Bound on the reference's own relative error: the two CDF values round by
    2^-53 of the larger, max(F(b), S(a)) <= 1, and the difference keeps that absolute error."""
    larger = torch.where(a > 0, torch.sigmoid(-a), torch.sigmoid(b))
    return 2.0**-52 * larger / mass


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bins_sum_to_one(dtype):
    loc, log_scale = _grid(dtype)
    log_mass = DiscretizedLogistic(loc, log_scale).log_prob(LEVELS.to(dtype))
    assert log_mass.shape == (loc.shape[0], 256)
    total = log_mass.double().exp().sum(-1)
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    assert (total - 1).abs().max().item() < tol


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_log_mass_matches_float64_cdf_difference(dtype):
    loc, log_scale = _grid(dtype)
    log_mass = DiscretizedLogistic(loc, log_scale).log_prob(LEVELS.to(dtype)).double()
    mass, a, b = _reference(loc, log_scale)
    ok = mass > 1e-300  # the reference is a normal float64 there
    low = ok & (mass < 1e-5)
    assert low.sum() > 10_000  # the low-mass regime is well covered
    size = 1 + a.nan_to_num(0, 0, 0).abs() + b.nan_to_num(0, 0, 0).abs() + mass.log().abs()
    unit = 2.0**-20 if dtype == torch.float32 else 2.0**-49
    tol = unit * size + 2 * _reference_error(mass, a, b)
    err = (log_mass - mass.log()).abs()
    assert (err[ok] <= tol[ok]).all(), (err[ok] / tol[ok]).max().item()


def test_log_prob_gradients_are_finite_in_every_regime():
    loc, log_scale = _grid(torch.float32)
    log_scale = torch.cat([log_scale, torch.full_like(log_scale[:5], 30.0)])
    loc = torch.cat([loc, loc[:5]]).requires_grad_(True)
    log_scale.requires_grad_(True)
    lp = DiscretizedLogistic(loc, log_scale).log_prob(LEVELS)
    assert torch.isfinite(lp).all()
    g_loc, g_scale = torch.autograd.grad(lp.sum(), [loc, log_scale])
    assert torch.isfinite(g_loc).all() and torch.isfinite(g_scale).all()


def test_mean_is_the_mean_of_the_bins():
    """E[x] = sum_k (k/255) p_k, which is not the clamped location."""
    loc, log_scale = _grid(torch.float32)
    mean = DiscretizedLogistic(loc, log_scale).mean.double()
    mass, _, _ = _reference(loc, log_scale)
    expected = (mass * LEVELS.double()).sum(-1, keepdim=True)
    assert (mean - expected).abs().max().item() < 1e-6
    # e.g. a wide logistic centred near 0 puts much of its mass well above 0
    d = DiscretizedLogistic(torch.tensor(0.05), torch.tensor(math.log(0.2)))
    assert d.mean.item() > 0.15
