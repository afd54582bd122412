"""MIG and the beta-VAE score on representations whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pyrovae.analysis.disentanglement import (
    beta_vae_score,
    discrete_mutual_info,
    discretize,
    entropy,
    mig,
)
from pyrovae.data.shapes import SHAPES
from pyrovae.errors import DataError


@pytest.fixture(scope="module")
def factors() -> np.ndarray:
    return SHAPES.all_factors()  # the full 3 x 6 x 10 x 10 grid


def test_entropy_and_mutual_information():
    v = np.repeat(np.arange(4), 25)
    assert entropy(v) == pytest.approx(math.log(4), abs=1e-12)
    assert discrete_mutual_info(v, v) == pytest.approx(math.log(4), abs=1e-12)
    # independent by construction (every pair of values equally often): exactly 0
    a, b = np.meshgrid(np.arange(4), np.arange(5), indexing="ij")
    assert discrete_mutual_info(a.ravel(), b.ravel()) == pytest.approx(0.0, abs=1e-12)
    # a function of v keeps the information it keeps: v // 2 has log 2
    assert discrete_mutual_info(v, v // 2) == pytest.approx(math.log(2), abs=1e-12)


def test_discretize_uses_equal_width_bins():
    z = np.c_[(np.arange(100) + 0.5) / 100, np.linspace(-5, 5, 100) ** 3]
    d = discretize(z, bins=20)
    assert d.min() == 0 and d.max() == 19
    assert (np.diff(d, axis=0) >= 0).all()  # monotone
    assert (np.bincount(d[:, 0]) == 5).all()  # evenly spaced column: 5 points per bin
    assert np.bincount(d[:, 1])[[0, 9, 19]].tolist() == [2, 23, 2]  # cubed: dense middle


def test_mig_is_near_one_for_the_factors_themselves(factors):
    rng = np.random.default_rng(0)
    z = np.c_[factors.astype(float), rng.normal(size=(len(factors), 3))]  # + 3 noise dims
    out = mig(z, factors)
    assert out["mig"] > 0.95
    assert min(out["per_factor"]) > 0.9
    assert np.asarray(out["mutual_info"]).shape == (7, 4)


def test_mig_is_near_zero_for_mixed_or_random_latents(factors):
    rng = np.random.default_rng(0)
    f = (factors - factors.mean(0)) / factors.std(0)
    # every latent an equal-weight mix of all factors (a Hadamard rotation)
    h = np.array([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]]) / 2.0
    assert mig(f @ h.T, factors)["mig"] < 0.1
    # a random rotation of factors and noise dimensions
    z = np.c_[f, rng.normal(size=(len(f), 3))]
    q, _ = np.linalg.qr(rng.normal(size=(7, 7)))
    assert mig(z @ q, factors)["mig"] < 0.25
    assert mig(rng.normal(size=(len(f), 7)), factors)["mig"] < 0.05


def test_mig_rejects_mismatched_inputs(factors):
    with pytest.raises(DataError, match="same N"):
        mig(np.zeros((10, 2)), factors)


class FactorImages:
    """A generator whose 'images' are the factor values themselves (so that an identity
    encoder is the perfectly disentangled one)."""

    factor_sizes = SHAPES.factor_sizes

    def sample_factors(self, n, rng):
        return SHAPES.sample_factors(n, rng)

    def render(self, f):
        return torch.as_tensor(f, dtype=torch.float32)


def test_beta_vae_score_high_for_identity_and_chance_for_random():
    gen = FactorImages()
    ident = beta_vae_score(lambda x: x, gen, n_train=300, n_eval=200, pairs=32)
    assert ident["accuracy"] > 0.97 and ident["chance"] == 0.25
    g = torch.Generator().manual_seed(0)
    rand = beta_vae_score(
        lambda x: torch.randn(x.shape[0], 6, generator=g), gen, n_train=300, n_eval=200, pairs=32
    )
    assert abs(rand["accuracy"] - 0.25) < 0.1
    # a code that holds pos_x only: k = pos_x is recognised, the other three are guesses
    only_x = beta_vae_score(
        lambda x: torch.cat([x[:, 2:3], torch.randn(x.shape[0], 3, generator=g)], 1),
        gen,
        n_train=300,
        n_eval=200,
        pairs=32,
    )
    assert 0.35 < only_x["accuracy"] < 0.65  # about 1/4 + 3/4 * 1/3 = 0.5


def test_beta_vae_score_on_shape_images():
    # an encoder that reads the centre of mass of the image: recovers pos_x and pos_y
    c = torch.arange(32, dtype=torch.float32) + 0.5

    def centre(x):
        img = x[:, 0]
        m = img.sum((1, 2))
        return torch.stack([(img.sum(1) * c).sum(1) / m, (img.sum(2) * c).sum(1) / m, m], 1)

    out = beta_vae_score(centre, SHAPES, n_train=200, n_eval=200, pairs=32)
    assert out["accuracy"] > 0.9  # chance is 0.25
