"""The heston dataset: the notes' default grid, shapes, mask and conditions, the two
observables and cell selections, determinism and the cache, random draws, loading
through load_data and the command line, and one-line errors for bad options."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import pyrovae.data.heston as heston_data
from pyrovae.cli import main
from pyrovae.config import load_toml
from pyrovae.data import DATASETS, load_data
from pyrovae.data.heston import (
    CONDITION_NAMES,
    NOTES_MATURITY_DAYS,
    HestonSpec,
    cubic_log_moneyness,
    heston_surfaces,
)
from pyrovae.errors import DataError
from pyrovae.finance import HestonParams, heston_implied_vol

#: A small grid for the tests: 3 maturities, 21 strikes, 2^4 = 16 surfaces.
SMALL = {"maturity_days": [6, 30, 182], "strikes": 20, "levels": 2}


def test_heston_is_registered_with_its_options():
    loader = DATASETS.get("heston")
    assert "observable" in loader.options and "cells" in loader.options


def test_the_default_spec_is_the_notes_setting():
    spec = HestonSpec()
    days = [6, 12, 18, *(26 * j for j in range(1, 15))]
    assert list(spec.maturity_days) == days == list(NOTES_MATURITY_DAYS) and len(days) == 17
    np.testing.assert_allclose(spec.maturities, np.array(days) / 365.0, rtol=0, atol=0)
    k = spec.log_moneyness
    x = np.linspace(-(0.4 ** (1 / 3)), 0.6 ** (1 / 3), 100)
    assert k.shape == (101,) and 0.0 in k and bool((np.diff(k) > 0).all())
    np.testing.assert_allclose(k, np.sort(np.append(x**3, 0.0)), rtol=0, atol=1e-15)
    assert k[0] == pytest.approx(-0.4, abs=1e-12) and k[-1] == pytest.approx(0.6, abs=1e-12)
    p = spec.parameters()
    assert p.shape == (625, 4) and spec.v0 == 0.05
    for col, (lo, hi) in enumerate([(0.1, 0.9), (0.05**2, 0.25**2), (-0.9, -0.1), (0.1, 0.5)]):
        np.testing.assert_allclose(np.unique(p[:, col]), np.linspace(lo, hi, 5), rtol=1e-15)
    # C order, kappa slowest: consecutive rows differ in sigma only
    assert (p[0] == p[1])[:3].all() and p[1, 3] > p[0, 3]
    assert spec.observable == "w" and spec.cells == "common"


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return root, heston_surfaces(root=root, **SMALL)


def test_surfaces_shapes_mask_and_parameters(small):
    _, s = small
    assert s.iv.shape == (16, 3, 21) and s.params.shape == (16, 4)
    np.testing.assert_array_equal(s.params, HestonSpec(**SMALL).parameters())
    assert bool((s.mask == ~np.isnan(s.iv)).all())
    # deep out of the money at 6 days there is no implied vol; at the money there always is
    assert not s.mask[:, 0, 0].any() and not s.mask[:, 0, -1].any()
    assert s.mask[:, :, s.log_moneyness == 0].all() and s.mask[:, 2].mean() > 0.9
    np.testing.assert_allclose(s.w, s.iv**2 * (np.array([6, 30, 182]) / 365.0)[:, None])
    assert s.common_cells().sum() == s.mask.all(0).sum() < 3 * 21


def test_surfaces_are_the_pricers_implied_vols(small):
    _, s = small
    kappa, eta, rho, sigma = s.params[5]
    iv, ok = heston_implied_vol(
        HestonParams(0.05, kappa, eta, rho, sigma),
        torch.from_numpy(s.log_moneyness),
        torch.from_numpy(s.maturities),
        iv_tol=1e-6,
    )
    np.testing.assert_allclose(iv.numpy(), s.iv[5], rtol=0, atol=1e-12)
    assert bool((ok.numpy() == s.mask[5]).all())


def _surface_index(surfaces, conditions: torch.Tensor) -> list[int]:
    """Which generated surface each row's conditions are (float32 rows)."""
    params = torch.from_numpy(surfaces.params).to(torch.float32)
    return [int((params == c).all(1).nonzero()[0]) for c in conditions]


@pytest.mark.parametrize("observable", ["w", "iv"])
def test_load_data_rows_and_conditions_match(small, observable):
    root, s = small
    data = load_data(
        "heston",
        root=root,
        val_fraction=0.25,
        test_fraction=0.25,
        data_options={**SMALL, "observable": observable},
    )
    assert data.likelihood == "gaussian" and not data.is_image
    assert data.train.shape[0] + data.val.shape[0] + data.test.shape[0] == 16
    keep = s.common_cells()
    truth = (s.w if observable == "w" else s.iv)[:, keep]
    for split in ("train", "val", "test"):
        x, c = data.split(split), data.conditions(split)
        assert c.shape == (x.shape[0], 4) and c.dtype == torch.float32
        assert x.shape[1] == int(keep.sum()) and bool(torch.isfinite(x).all())
        idx = _surface_index(s, c)
        np.testing.assert_allclose(x.numpy(), truth[idx].astype(np.float32), rtol=0, atol=0)
    assert data.labels("train") is None


def test_cells_all_keeps_every_cell_with_nan_where_missing(small):
    root, s = small
    data = load_data("heston", root=root, test_fraction=0.0, data_options={**SMALL, "cells": "all"})
    x = torch.cat([data.train, data.val])
    c = torch.cat([data.conditions_train, data.conditions_val])
    assert x.shape == (16, 3 * 21)
    idx = _surface_index(s, c)
    np.testing.assert_array_equal(torch.isnan(x).numpy(), ~s.mask[idx].reshape(16, -1))
    # rows back on the grid
    grid = s.to_grid(x.numpy(), cells="all")
    np.testing.assert_allclose(grid, s.w[idx], rtol=1e-6)


def test_generation_is_deterministic_and_cached(tmp_path, monkeypatch, small):
    _, first = small
    again = heston_surfaces(root=tmp_path, **SMALL)  # another root: generated anew
    np.testing.assert_array_equal(again.iv, first.iv)
    files = sorted((tmp_path / "heston").iterdir())
    assert len(files) == 1 and files[0].name.startswith("surfaces-") and files[0].suffix == ".npz"

    def fail(spec):
        raise AssertionError("generated although cached")

    monkeypatch.setattr(heston_data, "generate", fail)
    cached = heston_surfaces(root=tmp_path, **SMALL, observable="iv", cells="all")
    np.testing.assert_array_equal(cached.iv, first.iv)
    assert cached.spec.observable == "iv"  # the view options are not part of the cache key
    assert sorted((tmp_path / "heston").iterdir()) == files
    with pytest.raises(AssertionError, match="generated although cached"):
        heston_surfaces(root=tmp_path, **{**SMALL, "iv_tol": 1e-5})


def test_random_draws_are_seeded_and_in_range(tmp_path):
    opts = {"maturity_days": [30, 182], "strikes": 10, "params": "random", "n": 7, "seed": 3}
    a = heston_surfaces(root=tmp_path, **opts)
    b = heston_surfaces(root=tmp_path / "other", **opts)
    c = heston_surfaces(root=tmp_path, **{**opts, "seed": 4})
    assert a.params.shape == (7, 4) and a.iv.shape == (7, 2, 11)
    np.testing.assert_array_equal(a.iv, b.iv)
    assert not np.array_equal(a.params, c.params)
    for col, name in enumerate(CONDITION_NAMES):
        lo, hi = getattr(HestonSpec(), name)
        assert (a.params[:, col] >= lo).all() and (a.params[:, col] <= hi).all()
    assert len(list((tmp_path / "heston").iterdir())) == 2


def test_a_read_only_root_still_loads(tmp_path):
    root = tmp_path / "ro"
    root.mkdir()
    (root / "heston").mkdir()
    (root / "heston").chmod(0o500)
    try:
        s = heston_surfaces(root=root, maturity_days=[182], strikes=4, levels=1)
    finally:
        (root / "heston").chmod(0o700)
    assert s.iv.shape == (1, 1, 5)


def test_cubic_log_moneyness_without_a_duplicate_zero():
    k = cubic_log_moneyness(3, -1.0, 1.0)  # x = -1, 0, 1 already holds k = 0
    np.testing.assert_array_equal(k, [-1.0, 0.0, 1.0])


BAD = [
    ({"observabel": "iv"}, "unknown option 'observabel' of dataset 'heston' (did you mean "),
    ({"observable": "vol"}, "heston option observable must be one of w, iv; got 'vol'"),
    ({"cells": "triangle"}, "heston option cells must be one of common, all; got 'triangle'"),
    ({"params": "sobol"}, "heston option params must be one of grid, random; got 'sobol'"),
    ({"levels": 0}, "heston option levels must be an integer >= 1; got 0"),
    ({"n": 2.5}, "heston option n must be an integer >= 1; got 2.5"),
    ({"rho": [-1.0, 0.0]}, "heston options: Heston rho (the correlation) must be in (-1, 1)"),
    ({"sigma": [0.0, 0.5]}, "heston options: Heston sigma (the volatility of variance) must"),
    ({"eta": [0.1, 0.05]}, "heston option eta must be a range [low, high] with low <= high"),
    ({"kappa": 0.5}, "heston option kappa must be a range [low, high]; got 0.5"),
    ({"v0": -0.01}, "heston options: Heston v0 (the initial variance) must be >= 0"),
    ({"maturity_days": [30, 6]}, "heston option maturity_days must be increasing"),
    ({"maturity_days": [0, 6]}, "heston option maturity_days must be positive numbers of days"),
    ({"k_min": 0.1}, "heston options need k_min < 0 < k_max; got k_min=0.1, k_max=0.6"),
    ({"iv_tol": 0}, "heston option iv_tol must be > 0; got 0"),
]


@pytest.mark.parametrize("options, message", BAD, ids=[next(iter(o)) for o, _ in BAD])
def test_bad_options_get_one_line_errors(tmp_path, options, message):
    with pytest.raises(DataError) as info:
        load_data("heston", root=tmp_path, data_options=options)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
    assert not (tmp_path / "heston").exists()


def test_data_options_of_other_datasets_and_files_are_refused(tmp_path):
    with pytest.raises(DataError, match=r"^dataset 'digits' takes no data options; got scale$"):
        load_data("digits", data_options={"scale": 2})
    np.save(tmp_path / "x.npy", np.zeros((10, 3)))
    with pytest.raises(DataError, match="data options apply to registered datasets, not to"):
        load_data(str(tmp_path / "x.npy"), data_options={"observable": "iv"})


def test_cli_trains_on_heston_and_the_run_reloads_its_data(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["--data", "heston", "--data-root", str(tmp_path / "data"), "-o", str(run)]
    args += ["--data-options", "maturity_days=[6, 30, 182]", "--data-options", "strikes=10"]
    args += ["--data-options", "levels=2", "--epochs", "1", "--hidden", "8"]
    args += ["--latent-dim", "2", "--batch-size", "4", "--no-progress"]
    assert main(["train", *args]) == 0
    cfg = load_toml(run / "config.toml")
    assert cfg["data_options"] == {"maturity_days": [6, 30, 182], "strikes": 10, "levels": 2}
    assert cfg["likelihood"] == "gaussian"
    capsys.readouterr()
    assert main(["evaluate", str(run), "--particles", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert math.isfinite(result["elbo"])
