"""The procedural shapes dataset: factorial grid, factors that mean what they say,
determinism, and loading through load_data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pyrovae.data import DATASETS, load_data
from pyrovae.data.shapes import SHAPES, ShapesGenerator, factor_generator, make_shapes
from pyrovae.errors import DataError


def test_full_grid_has_every_factor_combination_once():
    x, y = make_shapes()
    assert x.shape == (1800, 1, 32, 32) and x.dtype == torch.float32
    assert y.shape == (1800, 4) and y.dtype == torch.int64
    assert SHAPES.factor_sizes == (3, 6, 10, 10)
    assert SHAPES.factor_names == ("shape", "scale", "pos_x", "pos_y")
    assert len({tuple(r) for r in y.tolist()}) == 1800
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert bool((x.flatten(1).sum(1) > 3).all())  # no empty image
    # no two factor combinations give the same image
    assert torch.unique(x.flatten(1), dim=0).shape[0] == 1800


def _centre_of_mass(img: torch.Tensor) -> tuple[float, float]:
    img = img[0].double()
    c = torch.arange(img.shape[0], dtype=torch.float64) + 0.5
    m = img.sum()
    return float((img.sum(0) * c).sum() / m), float((img.sum(1) * c).sum() / m)


def test_factors_mean_what_the_table_says():
    x, y = make_shapes()
    pos = SHAPES.factors[2].values
    for img, f in zip(x[::7], y[::7], strict=True):
        cx, cy = _centre_of_mass(img)
        # every shape is symmetric about its vertical axis: x centre of mass = pos_x
        assert abs(cx - pos[int(f[2])]) < 0.05
        if int(f[0]) < 2:  # square and ellipse are also symmetric about the horizontal axis
            assert abs(cy - pos[int(f[3])]) < 0.05
        else:  # the triangle's centroid lies a third of its half-height below the centre
            r = SHAPES.factors[1].values[int(f[1])] * SHAPES.radius
            assert abs(cy - (pos[int(f[3])] + r / 3)) < 0.35
    # area grows with scale for each shape; areas close to the geometry's
    for shape in range(3):
        f = np.array([[shape, s, 4, 4] for s in range(6)])
        mass = SHAPES.render(f).sum((1, 2, 3))
        assert bool((mass[1:] > mass[:-1]).all())
        r = SHAPES.radius  # scale 1.0
        expected = {0: (2 * 0.85 * r) ** 2, 1: np.pi * r * 0.65 * r, 2: 2 * r * r}[shape]
        assert abs(float(mass[-1]) - expected) / expected < 0.06


def test_deterministic_and_seeded_samples():
    a, ya = make_shapes(100, seed=1)
    b, yb = make_shapes(100, seed=1)
    c, yc = make_shapes(100, seed=2)
    assert torch.equal(a, b) and torch.equal(ya, yb)
    assert not torch.equal(ya, yc)
    assert len({tuple(r) for r in ya.tolist()}) == 100  # without replacement
    # images rendered afresh equal the cached grid, and render looks up the right ones
    fresh = ShapesGenerator().draw(ya.numpy())
    assert torch.equal(fresh, a)
    assert torch.equal(SHAPES.render(ya.numpy()), a)


def test_render_rejects_bad_factors():
    with pytest.raises(DataError, match="out of range"):
        SHAPES.render(np.array([[3, 0, 0, 0]]))
    with pytest.raises(DataError, match="shape"):
        SHAPES.render(np.array([0, 0, 0, 0]))
    with pytest.raises(DataError, match="integer"):
        SHAPES.render(np.array([[0.5, 0, 0, 0]]))
    with pytest.raises(DataError, match="positive"):
        make_shapes(0)


def test_loads_through_load_data():
    # the time the grid takes to render is measured by benchmarks/bench_shapes.py
    assert "shapes" in DATASETS
    grid, factors = ShapesGenerator().grid()
    assert grid.shape == (1800, 1, 32, 32) and torch.equal(
        factors, torch.from_numpy(SHAPES.all_factors())
    )
    d = load_data("shapes")
    assert d.data_shape == (1, 32, 32) and d.is_image and d.likelihood == "bernoulli"
    assert (d.train.shape[0], d.val.shape[0], d.test.shape[0]) == (1458, 162, 180)
    assert d.y_train.shape == (1458, 4) and d.y_test.shape == (180, 4)
    # labels stay with their images through the split
    assert torch.equal(SHAPES.render(d.y_test.numpy()), d.test)
    assert torch.equal(load_data("shapes").test, d.test)


def test_factor_generator_lookup():
    assert factor_generator("shapes") is SHAPES
    assert factor_generator("digits") is None
    assert factor_generator("no/such/file.npy") is None
