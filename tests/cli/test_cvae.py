"""``--model cvae`` from the command line: training on the digits' labels, on a data
file's condition columns and on the heston surfaces' parameters; evaluate with the
split's conditions; ``sample --condition`` / ``--condition-values``; bad conditions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pyrovae.api import load
from pyrovae.cli import main

from .conftest import TINY


@pytest.fixture(scope="module")
def cvae_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("cvae") / "run"
    assert main(["train", *TINY, "--model", "cvae", "--prior", "conditional", "-o", str(run)]) == 0
    return run


def test_train_and_evaluate_on_the_digits_labels(cvae_run, capsys, run_cli, strict_json):
    est = load(cvae_run)
    assert est.family == "cvae" and est.condition_.kind == "label"
    assert est.condition_.width == 10
    out = strict_json(run_cli(capsys, ["evaluate", cvae_run, "--particles", "2", "--samples", "5"]))
    assert out["model"] == "cvae" and np.isfinite(out["elbo"])
    assert np.isfinite(out["log_likelihood"])
    assert out["kl_per_dim"] is None  # p(z | c) has no single per-dimension KL


def test_sample_given_a_class(cvae_run, tmp_path, capsys, run_cli, strict_json, assert_png):
    png = tmp_path / "three.png"
    args = ["sample", cvae_run, "-n", "6", "--condition", "3", "--output", png]
    strict_json(run_cli(capsys, args))
    assert_png(png)
    assert np.load(png.with_suffix(".npy")).shape == (6, 1, 8, 8)


@pytest.mark.parametrize(
    "extra, message",
    [
        ([], "samples given a condition"),
        (["--condition", "12"], "class 12 is out of range"),
        (["--condition", "three"], "'three' is not a class index"),
        (["--condition-values", "c.npy"], "is a class label"),
    ],
)
def test_bad_conditions(cvae_run, tmp_path, capsys, extra, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "c.npy", np.zeros(2, dtype=np.float32))
    out = tmp_path / "s.png"
    assert main(["sample", str(cvae_run), "-n", "2", "--output", str(out), *extra]) != 0
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_an_unconditional_run_refuses_a_condition(digits_run, tmp_path, capsys):
    args = ["sample", str(digits_run), "--condition", "3", "--output", str(tmp_path / "s")]
    assert main(args) != 0
    assert "unconditional" in capsys.readouterr().err


def test_condition_columns_of_a_csv(tmp_path, capsys, run_cli, strict_json):
    rng = np.random.default_rng(0)
    c = rng.normal(size=(120, 2))
    x = c @ rng.normal(size=(2, 3)) + 0.1 * rng.normal(size=(120, 3))
    rows = "\n".join(",".join(f"{v:.5f}" for v in r) for r in np.c_[x, c])
    (tmp_path / "t.csv").write_text("a,b,d,u,v\n" + rows + "\n")
    run = tmp_path / "run"
    args = ["train", *TINY, "--model", "cvae", "--data", tmp_path / "t.csv"]
    run_cli(capsys, [*args, "--condition-columns", "u,v", "--scale", "standardize", "-o", run])
    est = load(run)
    assert est.data_shape_ == (3,) and est.condition_.kind == "covariates"
    assert est.condition_.width == 2 and est.data_info_["condition_names"] == ["u", "v"]
    assert "condition_columns = [" in (run / "config.toml").read_text()
    strict_json(run_cli(capsys, ["evaluate", run]))
    np.save(tmp_path / "c1.npy", np.array([0.3, -0.2], dtype=np.float32))
    np.savetxt(tmp_path / "c4.csv", rng.normal(size=(4, 2)), delimiter=",")
    run_cli(capsys, ["sample", run, "-n", "5", "--condition-values", tmp_path / "c1.npy"])
    assert np.load(run / "samples-5.npy").shape == (5, 3)
    run_cli(capsys, ["sample", run, "-n", "4", "--condition-values", tmp_path / "c4.csv"])
    np.save(tmp_path / "c3.npy", np.zeros(3, dtype=np.float32))
    assert main(["sample", str(run), "--condition-values", str(tmp_path / "c3.npy")]) != 0
    err = capsys.readouterr().err.strip()
    assert err.endswith("the conditions have width 3 but the model's have width 2")


def test_heston_parameters_as_conditions(tmp_path, capsys, run_cli, strict_json):
    """The heston surfaces carry their generating parameters as conditions."""
    run = tmp_path / "run"
    options = ["--data-options", "levels=2", "--data-options", "strikes=20"]
    run_cli(
        capsys,
        ["train", *TINY, "--model", "cvae", "--data", "heston", *options]
        + ["--scale", "standardize", "--val-fraction", "0.2", "-o", run],
    )
    est = load(run)
    assert est.condition_.kind == "covariates" and est.condition_.width >= 4
    out = strict_json(run_cli(capsys, ["evaluate", run]))
    assert np.isfinite(out["elbo"])


def test_cvae_needs_conditions(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((50, 4)).astype(np.float32))
    args = ["train", *TINY, "--model", "cvae", "--data", str(tmp_path / "x.npy")]
    assert main([*args, "-o", str(tmp_path / "run")]) != 0
    assert "needs the condition of every" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_report_and_analyze(cvae_run, tmp_path, capsys, run_cli, strict_json):
    out = tmp_path / "analysis"
    summary = strict_json(
        run_cli(
            capsys,
            ["analyze", cvae_run, "--n", "20", "--draws", "5", "--samples", "5"]
            + ["--mcmc-points", "0", "--output", out, "--no-progress"],
        )
    )
    assert np.isfinite(summary["log_likelihood"])
    assert json.loads((out / "diagnostics.json").read_text())["sbc"] is None
    report = json.loads(run_cli(capsys, ["report", cvae_run, "--output", tmp_path / "r.html"]))
    html = (tmp_path / "r.html").read_text()
    assert report["report"].endswith("r.html") and "could not be drawn" not in html
    assert "per class" in html


def test_a_bayesian_decoder_is_refused_with_one_line(tmp_path, capsys):
    run = tmp_path / "bayes"
    args = ["train", *TINY, "--model", "cvae", "--bayesian-decoder", "-o", str(run)]
    assert main(args) != 0
    err = capsys.readouterr().err.strip()
    assert "bayesian_decoder is available for the vae and hvae families, not cvae" in err
    assert len(err.splitlines()) == 1 and not run.exists()


def test_complete_given_the_rows_conditions(cvae_run, run_copy, tmp_path, capsys):
    """``complete`` on a cvae run: the rows' condition (--condition) changes the
    completion; without one, and with one on an unconditional run, a one-line error and
    nothing written."""
    from pyrovae.data import load_data

    x = load_data("digits").test[:2].reshape(2, 64).numpy()
    part = x.copy()
    part[:, 32:] = np.nan
    np.save(tmp_path / "p.npy", part)
    means = {}
    for name, given in (("three", ["--condition", "3"]), ("five", ["--condition", "5"])):
        out = tmp_path / name
        argv = ["complete", str(cvae_run), "--data", str(tmp_path / "p.npy"), "--draws", "10"]
        assert main([*argv, "--method", "svi", "--steps", "5", "-o", str(out), *given]) == 0
        means[name] = np.load(out / "completion_mean.npy")
        assert np.isfinite(means[name]).all()
        np.testing.assert_array_equal(means[name].reshape(2, 64)[:, :32], x[:, :32])
    assert not np.allclose(means["three"], means["five"])
    capsys.readouterr()
    argv = ["complete", str(cvae_run), "--data", str(tmp_path / "p.npy"), "-o", str(tmp_path / "x")]
    assert main(argv) != 0
    err = capsys.readouterr().err.strip()
    assert "pass --condition or --condition-values" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()
    argv = ["complete", str(run_copy), "--data", str(tmp_path / "p.npy"), "--condition", "3"]
    assert main([*argv, "-o", str(tmp_path / "y")]) != 0
    err = capsys.readouterr().err.strip()
    assert "model is unconditional; drop --condition" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "y").exists()
