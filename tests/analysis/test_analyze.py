"""``analyze_run``: the posterior analysis of a fitted estimator or a run folder, written
under the names of ``pyrovae.runs.names``; ``pyrovae analyze`` prints what it returns."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pyrovae import arviz_compat
from pyrovae.analysis import analyze_run
from pyrovae.api import AE, VAE
from pyrovae.cli import main
from pyrovae.data import load_data
from pyrovae.errors import ConfigError
from pyrovae.runs import names

FAST = {"draws": 5, "samples": 5, "mcmc_points": 0}


@pytest.fixture(scope="module")
def vae(digits):
    return VAE(latent_dim=2, hidden=(16,), epochs=1).fit(digits.train[:200])


def test_an_estimator_with_its_data(vae, digits, tmp_path):
    summary = analyze_run(
        None, digits, estimator=vae, output=tmp_path, n=12, sbc_simulations=20, **FAST
    )
    written = {p.name for p in tmp_path.iterdir()}
    assert written == set(names.ANALYZE_FILES)
    assert sorted(summary["files"]) == sorted(str(tmp_path / n) for n in names.ANALYZE_FILES)
    diag = json.loads((tmp_path / names.DIAGNOSTICS).read_text())
    assert diag["run"] is None and diag["split"] == "test" and diag["n"] == 12
    assert diag["decomposition"]["samples"] == 5 and diag["sbc"]["n"] == 20
    assert summary["log_likelihood"] == diag["decomposition"]["log_likelihood"]
    assert summary["ood_auroc"] == diag["ood"]["auroc"] and "max_khat" not in summary
    observed = arviz_compat.group(
        arviz_compat.from_netcdf(tmp_path / names.POSTERIOR), "observed_data"
    )
    np.testing.assert_array_equal(observed["x"].values, digits.test[:12].reshape(12, -1).numpy())


def test_skipped_steps_write_no_file(vae, digits, tmp_path):
    analyze_run(None, digits, estimator=vae, output=tmp_path, n=5, sbc_simulations=0, **FAST)
    assert names.SBC not in {p.name for p in tmp_path.iterdir()}
    assert "sbc" not in json.loads((tmp_path / names.DIAGNOSTICS).read_text())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n": 0}, "n must be >= 1; got 0"),
        ({"draws": 0}, "draws must be >= 1; got 0"),
        ({"samples": 0}, "samples must be >= 1; got 0"),
        ({"sbc_simulations": -1}, "mcmc_points and sbc_simulations must be >= 0"),
        ({"mcmc_points": 1, "mcmc_samples": 0}, "mcmc_samples must be >= 1 and mcmc_warmup >= 0"),
        ({"mcmc_points": 1, "mcmc_warmup": -1}, "mcmc_samples must be >= 1 and mcmc_warmup >= 0"),
        ({"output": None}, "analyzing an estimator needs an output folder"),
        ({"estimator": None}, "analyze needs a run folder or a fitted estimator"),
        ({"estimator": VAE()}, "analyze needs a fitted estimator"),
        ({"split": "val", "data": "empty"}, "the val split is empty; choose another split"),
    ],
)
def test_refusals_write_nothing(vae, digits, tmp_path, kwargs, message):
    out = tmp_path / "out"
    call = {"estimator": vae, "output": out, "data": digits, **FAST, **kwargs}
    if call["data"] == "empty":
        np.save(tmp_path / "x.npy", digits.train[:50].numpy())
        call["data"] = load_data(str(tmp_path / "x.npy"), val_fraction=0.0)
    with pytest.raises(ConfigError, match=message):
        analyze_run(None, **call)
    assert not out.exists()


def test_an_autoencoder_is_refused(digits, tmp_path):
    ae = AE(latent_dim=2, hidden=(16,), epochs=1).fit(digits.train[:100])
    message = r"^analyze \(of a ae run\) needs a model with latent variables"
    with pytest.raises(ConfigError, match=message):
        analyze_run(None, digits, estimator=ae, output=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_command_prints_what_the_function_returns(digits, tmp_path, capsys):
    """Same run, same options, same seed: the CLI's JSON is analyze_run's summary."""
    np.save(tmp_path / "x.npy", digits.train[:200].numpy())
    run = tmp_path / "run"
    train = ["train", "--data", str(tmp_path / "x.npy"), "--epochs", "1", "--hidden", "16"]
    assert main([*train, "--latent-dim", "2", "--no-progress", "-o", str(run)]) == 0
    capsys.readouterr()
    argv = ["analyze", str(run), "--output", str(tmp_path / "cli"), "--n", "8", "--sbc", "20"]
    argv += ["--draws", "5", "--samples", "5", "--mcmc-points", "0", "--seed", "2"]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    opts = {**FAST, "n": 8, "sbc_simulations": 20, "seed": 2}
    returned = analyze_run(str(run), output=tmp_path / "api", **opts)
    relative = [
        str(p).replace(str(tmp_path / "api"), str(tmp_path / "cli")) for p in returned["files"]
    ]
    assert printed == {**returned, "files": relative}
    assert (tmp_path / "api" / names.DIAGNOSTICS).read_text() == (
        tmp_path / "cli" / names.DIAGNOSTICS
    ).read_text()
