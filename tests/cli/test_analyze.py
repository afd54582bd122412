"""`pyrovae analyze`: --data, --split, --n, --output and --seed, and their errors.

One small run (200 digit images from a .npy file, one epoch) is analyzed with the
expensive parts off (no NUTS, no calibration) and few draws.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pyrovae import arviz_compat
from pyrovae.api import load
from pyrovae.cli import main
from pyrovae.cli.args import N
from pyrovae.data import load_data

FAST = ["--draws", "5", "--samples", "5", "--mcmc-points", "0", "--sbc", "0"]


@pytest.fixture(scope="module")
def run(tmp_path_factory, digits):
    folder = tmp_path_factory.mktemp("analyze")
    np.save(folder / "x.npy", digits.train[:200].numpy())
    args = ["train", "--data", str(folder / "x.npy"), "--epochs", "1", "--hidden", "16"]
    args += ["--latent-dim", "2", "--no-progress", "-o", str(folder / "run")]
    assert main(args) == 0
    return folder / "run"


def _analyze(capsys, run, out, *extra) -> dict:
    capsys.readouterr()
    status = main(["analyze", str(run), "--output", str(out), *FAST, *extra])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return json.loads((out / "diagnostics.json").read_text())


def _observed(out) -> np.ndarray:
    data = arviz_compat.from_netcdf(out / "posterior.nc")
    return arviz_compat.group(data, "observed_data")["x"].values


def _draws(out) -> np.ndarray:
    data = arviz_compat.from_netcdf(out / "posterior.nc")
    return arviz_compat.group(data, "posterior")["z"].values


def _files(folder) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_output_folder_and_the_run_left_alone(run, tmp_path, capsys):
    before = _files(run)
    diag = _analyze(capsys, run, tmp_path / "out", "--n", "10")
    assert _files(run) == before  # nothing written into the run
    for name in ("posterior.nc", "posterior_summary.csv", "diagnostics.json", "latent.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0, name
    assert diag["split"] == "test" and diag["n"] == 10


@pytest.mark.parametrize("split, n, rows", [("val", 7, 7), ("train", 12, 12), ("test", 50, 20)])
def test_split_and_n_choose_the_rows(run, tmp_path, capsys, split, n, rows):
    """The run's splits of 200 rows (split seed 0): 20 test, 18 validation, 162 train."""
    x = load_data(str(run.parent / "x.npy")).split(split)[:n]
    diag = _analyze(capsys, run, tmp_path, "--split", split, "--n", str(n))
    assert diag["split"] == split and diag["n"] == x.shape[0] == rows
    np.testing.assert_array_equal(_observed(tmp_path), x.reshape(rows, -1).numpy())


def test_data_replaces_the_runs_data(run, digits, tmp_path, capsys):
    """200 copies of one image: the rows analyzed are copies of it, and the
    out-of-distribution reference (each feature shuffled across rows) is the data itself,
    so in- and out-scores are exchangeable Monte Carlo draws and the AUROC follows the
    Mann-Whitney null distribution: mean 1/2, variance (n1 + n2 + 1) / (12 n1 n2)."""
    image = digits.test[:1].numpy()
    np.save(tmp_path / "same.npy", np.repeat(image, 200, axis=0))
    same = str(tmp_path / "same.npy")
    diag = _analyze(capsys, run, tmp_path / "out", "--data", same, "--split", "train")
    n = min(N, 162)  # --n's default, or all of the training split's 162 rows
    assert diag["n"] == n
    np.testing.assert_array_equal(
        _observed(tmp_path / "out"), np.repeat(image.reshape(1, -1), n, 0)
    )
    sd = math.sqrt((2 * n + 1) / (12 * n * n))
    assert abs(diag["ood"]["auroc"] - 0.5) < 4 * sd


def test_seed_reproduces_the_analysis(run, tmp_path, capsys):
    a = _analyze(capsys, run, tmp_path / "a", "--n", "10", "--seed", "3")
    b = _analyze(capsys, run, tmp_path / "b", "--n", "10", "--seed", "3")
    c = _analyze(capsys, run, tmp_path / "c", "--n", "10", "--seed", "4")
    assert a == b
    z = [_draws(tmp_path / k) for k in "abc"]
    assert np.array_equal(z[0], z[1]) and not np.array_equal(z[0], z[2])
    assert a["decomposition"]["log_likelihood"] != c["decomposition"]["log_likelihood"]
    assert a["decomposition"]["elbo"] != c["decomposition"]["elbo"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--n", "0"], "--n must be >= 1; got 0"),
        (["--draws", "0"], "--draws must be >= 1; got 0"),
        (["--samples", "0"], "--samples must be >= 1; got 0"),
        (["--mcmc-points", "-1"], "--mcmc-points and --sbc must be >= 0"),
        (["--sbc", "-1"], "--mcmc-points and --sbc must be >= 0"),
        (["--mcmc-samples", "0"], "--mcmc-samples must be >= 1 and --mcmc-warmup >= 0"),
        (["--mcmc-warmup", "-1"], "--mcmc-samples must be >= 1 and --mcmc-warmup >= 0"),
        (["--data", "{tiny}"], "the test split is empty; choose another --split"),
        (["--data", "{flat}"], "has rows of shape (3,); the model expects (1, 8, 8)"),
        (["--data", "{missing}"], "missing.npy"),
    ],
)
def test_bad_options_are_one_line_and_write_nothing(run, tmp_path, capsys, extra, message):
    np.save(tmp_path / "tiny.npy", np.zeros((4, 1, 8, 8), np.float32))  # no test rows
    np.save(tmp_path / "flat.npy", np.zeros((50, 3), np.float32))
    paths = {k: str(tmp_path / f"{k}.npy") for k in ("tiny", "flat", "missing")}
    extra = [e.format(**paths) for e in extra]
    before = _files(run)
    capsys.readouterr()
    assert main(["analyze", str(run), "--output", str(tmp_path / "out"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pyrovae: error: ") and err.count("\n") == 1
    assert message in err
    assert not (tmp_path / "out").exists() and _files(run) == before


def test_a_missing_run_and_a_bad_split(tmp_path, run, capsys):
    capsys.readouterr()
    assert main(["analyze", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pyrovae: error: no checkpoint at") and err.count("\n") == 1
    with pytest.raises(SystemExit) as exit_:
        main(["analyze", str(run), "--split", "holdout"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'holdout'" in err and err.count("\n") == 1


# -- every output of a full analysis, and the runs it refuses ---------------------------


def test_analyze_writes_every_output(tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--epochs",
                "3",
                "--hidden",
                "32",
                "--latent-dim",
                "2",
                "--no-progress",
                "-o",
                str(run),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert (
        main(
            [
                "analyze",
                str(run),
                "--n",
                "20",
                "--draws",
                "30",
                "--samples",
                "50",
                "--mcmc-points",
                "1",
                "--mcmc-samples",
                "40",
                "--mcmc-warmup",
                "30",
                "--sbc",
                "100",
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    for name in (
        "posterior.nc",
        "posterior_summary.csv",
        "posterior_forest.png",
        "diagnostics.json",
        "ood.png",
        "sbc.png",
        "latent.png",
        "uncertainty.png",
    ):
        assert (run / name).exists(), name
    data = arviz_compat.from_netcdf(run / "posterior.nc")
    assert arviz_compat.group(data, "posterior")["z"].shape == (1, 30, 20, 2)
    diag = json.loads((run / "diagnostics.json").read_text())
    assert diag["decomposition"]["samples"] == 50 and len(diag["sbc"]["p_values"]) == 2
    assert len(diag["mcmc"]["khat"]) == 1 and summary["max_khat"] == max(diag["mcmc"]["khat"])
    assert (diag["mcmc"]["num_samples"], diag["mcmc"]["warmup"]) == (40, 30)
    # the AUROC's value is checked where it is known: test_data_replaces_the_runs_data and
    # tests/analysis/test_uncertainty.py
    assert summary["ood_auroc"] == diag["ood"]["auroc"]
    assert diag["ood"]["reference"] == "features shuffled across rows"
    assert "mean" in (run / "posterior_summary.csv").read_text().splitlines()[0]
    # log p(x) and the gap against the API's estimates on the same 20 test points, with
    # other draws: within four standard errors of the difference of two estimates
    dec = diag["decomposition"]
    assert summary["log_likelihood"] == dec["log_likelihood"] and summary["gap"] == dec["gap"]
    assert dec["gap"] == pytest.approx(dec["log_likelihood"] - dec["elbo"], abs=1e-5)
    est, x = load(run), load_data("digits").test[:20]
    ll_a, ll_b = (est.log_likelihood(x, samples=50) for _ in range(2))
    se_ll = float((ll_a - ll_b).std() / math.sqrt(20))  # Monte Carlo only: same points
    assert abs(dec["log_likelihood"] - float(ll_a.mean())) < 4 * se_ll
    diff = ll_b - est.elbo(x, particles=10)  # the decomposition's ELBO uses 10 particles
    se_gap = float(diff.std() / math.sqrt(20))  # of the mean paired difference
    assert abs(dec["gap"] - float(diff.mean())) < 4 * math.sqrt(2) * se_gap


def test_analyze_refuses_autoencoders(tmp_path, capsys):
    run = tmp_path / "ae"
    assert (
        main(
            [
                "train",
                "--model",
                "ae",
                "--epochs",
                "1",
                "--hidden",
                "16",
                "--latent-dim",
                "2",
                "--no-progress",
                "-o",
                str(run),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["analyze", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pyrovae: error:") and "latent variables" in err and "\n" not in err
