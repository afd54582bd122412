"""`pyrovae select`: the scores against hand-computed AIC and BIC, and the runs it
refuses, each with one line and nothing written."""

from __future__ import annotations

import json
import math

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


def test_select_compares_runs(tmp_path, capsys):
    runs = []
    for d in (1, 3):
        run = tmp_path / f"l{d}"
        assert (
            main(
                [
                    "train",
                    "--latent-dim",
                    str(d),
                    "--epochs",
                    "2",
                    "--hidden",
                    "16",
                    "--no-progress",
                    "-o",
                    str(run),
                ]
            )
            == 0
        )
        runs.append(str(run))
    capsys.readouterr()
    assert main(["select", *runs, "--samples", "20", "--output", str(tmp_path)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [r["run"] for r in result["rows"]] == runs
    # by hand: the decoder d -> 16 -> 64 Bernoulli logits (the N(0, I) prior has no
    # parameters), N = 1455 training images, log L = N x the mean training log p(x)
    n = 1455
    for row, d in zip(result["rows"], (1, 3), strict=True):
        k = (d * 16 + 16) + (16 * 64 + 64)
        assert row["parameters"] == k
        total = n * row["train_log_likelihood"]
        assert row["aic"] == pytest.approx(-2 * total + 2 * k, rel=1e-6)
        assert row["bic"] == pytest.approx(-2 * total + k * math.log(n), rel=1e-6)
    rows = result["rows"]
    assert result["best"] == {
        "val_log_likelihood": max(rows, key=lambda r: r["val_log_likelihood"])["label"],
        "aic": min(rows, key=lambda r: r["aic"])["label"],
        "bic": min(rows, key=lambda r: r["bic"])["label"],
    }
    assert [r["label"] for r in rows] == ["l1 (latent 1)", "l3 (latent 3)"]
    assert json.loads((tmp_path / "selection.json").read_text()) == result
    assert (tmp_path / "selection.png").stat().st_size > 1000
