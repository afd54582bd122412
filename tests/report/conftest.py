"""Small trained runs shared by the report tests (trained once per session)."""

from __future__ import annotations

import numpy as np
import pytest

from pyrovae.cli import main

#: A name with HTML in it, to check that the report escapes what comes from the run.
EVIL = "<script>alert(1)"


def _train(run, *options: str) -> None:
    args = ["train", "--epochs", "3", "--hidden", "32", "--no-progress", "-o", str(run)]
    assert main(args + list(options)) == 0


@pytest.fixture(scope="session")
def vae_run(tmp_path_factory):
    """A VAE on digits (latent 3: the latent view is a PCA projection), with the
    outputs of `pyrovae analyze` in its folder."""
    run = tmp_path_factory.mktemp("report") / "vae"
    _train(run, "--latent-dim", "3")
    analyze = ["analyze", str(run), "--n", "20", "--draws", "20", "--samples", "30"]
    assert main(analyze + ["--mcmc-points", "0", "--sbc", "0"]) == 0
    return run


@pytest.fixture(scope="session")
def ae_run(tmp_path_factory):
    """An autoencoder on digits (latent 2)."""
    run = tmp_path_factory.mktemp("report") / "ae"
    _train(run, "--model", "ae", "--latent-dim", "2")
    return run


@pytest.fixture(scope="session")
def tabular_run(tmp_path_factory):
    """A VAE (latent 1) on a CSV file whose folder name and header hold HTML."""
    root = tmp_path_factory.mktemp("report")
    folder = root / EVIL
    folder.mkdir()
    g = np.random.default_rng(0)
    x = g.normal(size=(300, 2)) @ g.normal(size=(2, 5)) + 0.1 * g.normal(size=(300, 5))
    csv = folder / "data.csv"
    np.savetxt(csv, x, delimiter=",", header="a,b,c,d,<b>e</b>", comments="")
    run = root / "tabular"
    _train(run, "--data", str(csv), "--scale", "standardize", "--latent-dim", "1")
    return run
