"""The pricer decoder (``--net heston-pricer``): z -> constrained Heston parameters -> the
surface of the data's grid. Its outputs are the pricer's implied vols of its parameters
(exactly), its prior samples are free of static arbitrage, gradients reach every
weight, its options come from the run's data options and survive save / load, and bad
options are one-line errors."""

from __future__ import annotations

import json

import pytest
import torch

from pyrovae.api import VAE, load
from pyrovae.cli import main
from pyrovae.config import load_toml
from pyrovae.data import load_data
from pyrovae.data.heston import HestonSpec, heston_surfaces
from pyrovae.errors import ConfigError
from pyrovae.finance import arbitrage_report, heston_implied_vol
from pyrovae.models import ModuleSpec, build_module
from pyrovae.nets import DECODERS, ENCODERS, HestonPricerDecoder

#: A small grid: 3 maturities x 11 strikes, 2^4 = 16 surfaces.
SMALL = {"maturity_days": [6, 30, 182], "strikes": 10, "levels": 2}


def _spread(dec: HestonPricerDecoder, gain: float = 6.0) -> HestonPricerDecoder:
    """Scale the last layer so that prior draws reach the whole parameter box (at
    initialisation they sit near its centre)."""
    with torch.no_grad():
        dec.net[-1].weight.mul_(gain)
    return dec


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    heston_surfaces(root=root, **SMALL)
    return root


def test_registered_as_a_network_pair():
    assert DECODERS.get("heston-pricer") is HestonPricerDecoder
    assert "heston-pricer" in ENCODERS.names()
    assert HestonPricerDecoder.any_data_shape is False


def test_rows_are_the_pricers_implied_vols_of_its_parameters(root):
    """Channel 0 of the output is the pricer's implied vol (or total variance) at the
    decoded parameters, on the data's kept cells in (maturity, strike) order."""
    surfaces = heston_surfaces(root=root, **SMALL)
    keep = torch.from_numpy(surfaces.common_cells())
    torch.manual_seed(0)
    for observable in ("w", "iv"):
        options = {**SMALL, "observable": observable, "data_root": str(root)}
        dec = _spread(DECODERS.get("heston-pricer")(3, (int(keep.sum()),), 1, (16,), **options))
        z = torch.randn(2, 5, 3)
        with torch.no_grad():
            out = dec(z)
            p = dec.heston_params(z)
        assert out.shape == (2, 5, 1, int(keep.sum())) and out.dtype == torch.float32
        spec = HestonSpec(**SMALL)
        iv, ok = heston_implied_vol(p, spec.log_moneyness, spec.maturities, iv_tol=spec.iv_tol)
        assert bool(ok[..., keep].all())
        tau = torch.as_tensor(spec.maturities)[:, None]
        expected = (iv**2 * tau if observable == "w" else iv)[..., keep]
        torch.testing.assert_close(out[:, :, 0].double(), expected, rtol=1e-6, atol=0)


def test_parameters_stay_in_the_data_ranges(root):
    options = {**SMALL, "cells": "all", "rho": [-0.95, 0.3], "learn_v0": True}
    dec = _spread(DECODERS.get("heston-pricer")(4, (33,), 1, (8,), **options), gain=50.0)
    torch.manual_seed(1)
    with torch.no_grad():
        p = dec.heston_params(torch.randn(4000, 4))
    spec = HestonSpec(**SMALL, rho=(-0.95, 0.3))
    for name in ("kappa", "eta", "rho", "sigma"):
        lo, hi = getattr(spec, name)
        v = getattr(p, name)
        assert bool((v >= lo).all() and (v <= hi).all()), name
        # a wide last layer reaches both ends of the range
        assert v.min() < lo + 0.05 * (hi - lo) and v.max() > hi - 0.05 * (hi - lo), name
    assert bool((p.v0 >= 0.05 / 4).all() and (p.v0 <= 0.05 * 4).all())
    assert p.v0.std() > 0


def test_prior_samples_are_free_of_static_arbitrage():
    """On the notes' grid (every cell; NaN where the implied vol does not exist), 64
    decoded prior samples spread over the parameter box have no calendar and no
    butterfly violation, in float64 and rounded to float32 as the model outputs them."""
    dec = _spread(DECODERS.get("heston-pricer")(4, (17 * 101,), 1, (16,), cells="all"))
    torch.manual_seed(2)
    with torch.no_grad():
        w = dec.surface(torch.randn(64, 4), "w")
    k = dec.log_moneyness
    assert w.shape == (64, 17, 101) and torch.isfinite(w).float().mean() > 0.9
    for surface in (w, w.float()):
        report = arbitrage_report(surface, k)
        assert report.calendar_checked.sum() > 50_000 and report.butterfly_checked.sum() > 50_000
        assert report.surfaces_with_violations == 0, report.as_dict()
    # the diagnostics do see arbitrage in a surface that has it: a calendar spread
    bad = w.clone()
    bad[:, -1] = bad[:, -2] * 0.9
    assert arbitrage_report(bad, k).calendar_violations.sum() > 0


def test_gradients_reach_every_weight_and_match_finite_differences():
    options = {"maturity_days": [30, 120], "strikes": 6, "cells": "all"}
    dec = DECODERS.get("heston-pricer")(2, (14,), 2, (8,), **options).double()
    z = torch.randn(3, 2, dtype=torch.float64)
    out = dec(z)
    grads = torch.autograd.grad((out + out.square()).sum(), list(dec.parameters()))
    assert all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)
    # d(surface)/dz against central differences (the pricer is accurate to 1e-13, so
    # steps of 1e-5 leave an error of about 1e-8 + h^2)
    zz = torch.randn(1, 2, dtype=torch.float64, requires_grad=True)
    (jac,) = torch.autograd.grad(dec(zz)[0, 0].sum(), zz)
    h = 1e-5
    for j in range(2):
        e = torch.zeros_like(zz)
        e[0, j] = h
        with torch.no_grad():
            fd = (dec(zz + e)[0, 0].sum() - dec(zz - e)[0, 0].sum()) / (2 * h)
        assert jac[0, j].item() == pytest.approx(fd.item(), rel=1e-5, abs=1e-7)


def test_extra_likelihood_channels_are_learned_constants():
    options = {"maturity_days": [30, 120], "strikes": 6, "cells": "all"}
    dec = DECODERS.get("heston-pricer")(2, (14,), 3, (8,), **options)
    with torch.no_grad():
        dec.extra.copy_(torch.randn(2, 14))
        out = dec(torch.randn(4, 2))
    assert out.shape == (4, 3, 14)
    torch.testing.assert_close(out[:, 1:], dec.extra.expand(4, 2, 14))


def test_bad_options_are_one_line_errors(root):
    cls = DECODERS.get("heston-pricer")
    with pytest.raises(ConfigError, match=r"keeps 33 cells .* but the data have 64 features"):
        cls(2, (1, 8, 8), 1, (8,), **SMALL, cells="all")
    with pytest.raises(ConfigError, match="heston-pricer net options: unknown option 'strike'"):
        cls(2, (33,), 1, (8,), strike=3)
    with pytest.raises(ConfigError, match="v0_range needs learn_v0"):
        cls(2, (33,), 1, (8,), **SMALL, cells="all", v0_range=[0.01, 0.1])
    with pytest.raises(ConfigError, match="v0_range must have 0 < low <= high"):
        cls(2, (33,), 1, (8,), **SMALL, cells="all", learn_v0=True, v0_range=[0.1, 0.01])
    with pytest.raises(ConfigError, match="the mlp network has no option 'strikes'"):
        build_module("vae", ModuleSpec(data_shape=(5,), net_options={"strikes": 3}))
    with pytest.raises(ConfigError, match="train it with --scale none"):
        cls.options_from_run({"data": "heston", "scale": "standardize", "data_options": {}})
    assert cls.options_from_run({"data": "digits", "scale": "none"}) == {}


def test_fit_save_load_round_trip(root, tmp_path):
    data = load_data("heston", root=root, data_options={**SMALL, "observable": "iv"})
    est = VAE(
        net="heston-pricer",
        net_options={**SMALL, "observable": "iv", "data_root": str(root)},
        hidden=(8,),
        latent_dim=2,
        epochs=2,
        batch_size=8,
        likelihood="gaussian",
        likelihood_options={"scale": 0.01},
        seed=0,
    )
    est.fit(data.train, X_val=data.val)
    assert len(est.history_) == 2
    est.save(tmp_path / "m.pt")
    again = load(tmp_path / "m.pt")
    assert again.net_options == est.net_options
    z = torch.randn(3, 2)
    torch.testing.assert_close(again.decode(z).mean, est.decode(z).mean, rtol=0, atol=0)
    torch.testing.assert_close(again.reconstruct(data.val), est.reconstruct(data.val))


def test_cli_passes_the_data_options_and_the_run_reloads(root, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["--data", "heston", "--data-root", str(root), "-o", str(run), "--no-progress"]
    args += ["--data-options", "maturity_days=[6, 30, 182]", "--data-options", "strikes=10"]
    args += ["--data-options", "levels=2", "--data-options", "observable=iv"]
    args += ["--net", "heston-pricer", "--hidden", "8", "--latent-dim", "2"]
    args += ["--epochs", "1", "--batch-size", "8", "--likelihood-options", "scale=0.01"]
    assert main(["train", *args]) == 0
    cfg = load_toml(run / "config.toml")
    assert cfg["net_options"] == {**SMALL, "observable": "iv", "data_root": str(root.resolve())}
    est = load(run)
    assert est.module_.decoder.observable == "iv"
    capsys.readouterr()
    assert main(["evaluate", str(run), "--particles", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] > 0
    assert main(["train", *args, "--scale", "standardize", "--force"]) == 2
    assert "train it with --scale none (got --scale standardize)" in capsys.readouterr().err
