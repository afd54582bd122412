"""`pyrovae select`: the runs it refuses, each with one line and nothing written.

(The scores themselves are checked in tests/test_cli_analyze.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from pyrovae.api import VAE
from pyrovae.cli import main


@pytest.fixture(scope="module")
def runs(tmp_path_factory, digits):
    """Runs trained one epoch on 200 digit images (a VAE and an AE, and a VAE without a
    validation split), a VAE on 200 other images, and a model saved by the API, which
    records no data."""
    folder = tmp_path_factory.mktemp("select")
    np.save(folder / "x.npy", digits.train[:200].numpy())
    np.save(folder / "y.npy", digits.train[200:400].numpy())
    base = ["train", "--epochs", "1", "--hidden", "16", "--latent-dim", "2", "--no-progress"]
    runs = [("vae", "x", []), ("ae", "x", ["--model", "ae"]), ("other", "y", [])]
    runs += [("noval", "x", ["--val-fraction", "0"])]
    for name, data, extra in runs:
        args = [*base, "--data", str(folder / f"{data}.npy"), "-o", str(folder / name), *extra]
        assert main(args) == 0
    VAE(epochs=1, hidden=(16,), latent_dim=2).fit(digits.train[:100]).save(folder / "m.pt")
    return folder


@pytest.mark.parametrize(
    "names, extra, message",
    [
        (["vae"], ["--samples", "0"], "--samples must be >= 1; got 0"),
        (["vae", "ae"], [], "select needs models with latent variables; {ae} is a ae"),
        (["vae", "other"], [], "runs were trained on different data: {vae} has data = "),
        (["saved"], [], "{saved} does not record the data it was trained on"),
        (["vae", "nowhere"], [], "no checkpoint at '{nowhere}'"),
        (
            ["noval"],
            [],
            "select scores held-out log p(x) on the validation split, and the validation "
            "split of {noval} is empty (val_fraction = 0.0)",
        ),
    ],
)
def test_refusals_are_one_line_and_write_nothing(runs, tmp_path, capsys, names, extra, message):
    paths = {name: str(runs / name) for name in ("vae", "ae", "other", "nowhere", "noval")}
    paths["saved"] = str(runs / "m.pt")
    capsys.readouterr()
    out = tmp_path / "out"
    args = ["select", *[paths[n] for n in names], "--output", str(out), *extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("pyrovae: error: ") and err.count("\n") == 1
    assert message.format(**paths) in err
    assert not out.exists()
