"""The ``pyrovae`` command, run in-process with ``main([...])`` on tiny budgets."""

from __future__ import annotations

import contextlib
import csv
import importlib
import io
import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from pyrovae import __version__
from pyrovae.cli import build_parser, main
from pyrovae.config import OPTIONS, load_toml
from pyrovae.training import METRIC_COLUMNS

TINY = ["--epochs", "2", "--hidden", "32", "--latent-dim", "2", "--no-progress"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_cli(capsys, argv: list[str]) -> str:
    """Run the CLI, assert success and return its stdout."""
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert status == 0, err
    return out


def strict_json(text: str):
    """Parse JSON, refusing the non-standard NaN / Infinity tokens."""

    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def read_metrics(run: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(run / "metrics.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def assert_png(path: Path) -> None:
    assert path.is_file() and path.read_bytes()[:8] == PNG_MAGIC, path


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    """A 2-epoch VAE run on the digits (shared: tests that change it use a copy); its
    stdout is kept in ``stdout.json`` next to the run folder."""
    run = tmp_path_factory.mktemp("cli") / "run"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["train", *TINY, "-o", str(run)]) == 0
    (run.parent / "stdout.json").write_text(out.getvalue())
    return run


@pytest.fixture
def run_copy(digits_run, tmp_path) -> Path:
    return Path(shutil.copytree(digits_run, tmp_path / "run"))


# -- help --------------------------------------------------------------------------------


def _help(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0
    return capsys.readouterr().out


def _subparsers() -> dict:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "verb")
    return action.choices


def test_top_level_help_lists_the_verbs(capsys):
    out = _help(capsys, ["--help"])
    for verb in ("train", "evaluate", "sample", "components", "--version", "--verbose"):
        assert verb in out


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.strip() == f"pyrovae {__version__}"


def test_train_help_lists_every_option(capsys):
    out = _help(capsys, ["train", "--help"])
    for opt in OPTIONS:
        assert opt.flag in out, opt.flag
    for flag in ("--config", "--output", "--resume", "--force", "--no-progress", "--no-download"):
        assert flag in out
    # registry-backed options list the registered names
    from pyrovae.models import MODELS

    assert f"one of: {', '.join(MODELS.names())}" in " ".join(out.split())


@pytest.mark.parametrize("verb", ["train", "evaluate", "sample", "components"])
def test_each_verb_help_lists_all_its_options(capsys, verb):
    out = _help(capsys, [verb, "--help"])
    assert out.startswith(f"usage: pyrovae {verb}")
    for action in _subparsers()[verb]._actions:
        for flag in action.option_strings:
            assert flag in out, flag


def test_evaluate_and_sample_options(capsys):
    assert {"--split", "--particles", "--data", "--output"} <= {
        f for a in _subparsers()["evaluate"]._actions for f in a.option_strings
    }
    assert {"-n", "--output", "--seed", "--draw"} <= {
        f for a in _subparsers()["sample"]._actions for f in a.option_strings
    }


def test_a_verb_is_required(capsys):
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("pyrovae: error:") and err.count("\n") == 1


# -- train ------------------------------------------------------------------------------


def test_train_writes_the_run_folder(digits_run):
    run = digits_run
    for name in ("config.toml", "checkpoint.pt", "metrics.csv"):
        assert (run / name).is_file()
    assert_png(run / "reconstructions.png")
    assert_png(run / "samples.png")


def test_written_config(digits_run):
    cfg = load_toml(digits_run / "config.toml")
    assert cfg["epochs"] == 2 and cfg["hidden"] == [32] and cfg["latent_dim"] == 2
    assert cfg["data"] == "digits" and cfg["model"] == "vae"
    assert cfg["likelihood"] == "bernoulli"  # chosen from the data and recorded
    assert set(cfg) == {o.name for o in OPTIONS if o.default not in (None, {})} | {"likelihood"}


def test_checkpoint_is_plain_data(digits_run):
    ckpt = torch.load(digits_run / "checkpoint.pt", weights_only=True)
    assert ckpt["format"] == "pyrovae-checkpoint" and ckpt["family"] == "vae"
    assert ckpt["trainer"]["epoch"] == 2 and ckpt["data_shape"] == [1, 8, 8]
    assert ckpt["data"]["data"] == "digits" and ckpt["data"]["scaler"]["method"] == "none"


def test_metrics_file(digits_run):
    header, rows = read_metrics(digits_run)
    assert tuple(header) == METRIC_COLUMNS
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for row in rows:
        values = {k: float(v) for k, v in row.items()}
        assert all(math.isfinite(v) for v in values.values())
        for split in ("train", "val"):
            elbo, recon, kl = (values[f"{split}_{t}"] for t in ("elbo", "recon", "kl"))
            assert elbo == pytest.approx(recon - kl, abs=1e-3)
            assert values[f"{split}_loss"] == pytest.approx(-elbo, abs=1e-3)  # beta = 1


def test_train_prints_a_json_summary(digits_run):
    summary = strict_json((digits_run.parent / "stdout.json").read_text())
    assert summary["run"] == str(digits_run)
    assert summary["epochs"] == 2 and summary["best_epoch"] == 2
    assert summary["val_elbo"] == pytest.approx(-summary["val_loss"], rel=1e-5)
    assert [Path(f).name for f in summary["figures"]] == ["reconstructions.png", "samples.png"]


def test_config_file_options_take_effect_and_flags_override_them(tmp_path, capsys, monkeypatch):
    (tmp_path / "c.toml").write_text(
        "latent_dim = 5\nhidden = [16, 8]\nepochs = 1\nbeta = 0.5\nseed = 7\n"
        'activation = "tanh"\nval_fraction = 0.2\n'
    )
    monkeypatch.chdir(tmp_path)
    # no --output: the run goes to runs/MODEL-DATA-TIMESTAMP under the working folder
    run_cli(
        capsys,
        ["train", "--config", "c.toml", "--latent-dim", "3", "--seed", "8", "--no-progress"],
    )
    (run,) = (tmp_path / "runs").glob("vae-digits-*")
    cfg = load_toml(run / "config.toml")
    assert cfg["latent_dim"] == 3 and cfg["seed"] == 8  # flags win
    assert cfg["hidden"] == [16, 8] and cfg["epochs"] == 1 and cfg["beta"] == 0.5
    assert cfg["activation"] == "tanh" and cfg["val_fraction"] == 0.2
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ckpt["params"]["latent_dim"] == 3 and ckpt["params"]["hidden"] == [16, 8]
    assert ckpt["params"]["beta"] == 0.5 and ckpt["params"]["activation"] == "tanh"
    assert len(read_metrics(run)[1]) == 1
    # the written config.toml is itself a valid --config file
    again = tmp_path / "again"
    run_cli(capsys, ["train", "--config", run / "config.toml", "-o", again, "--no-progress"])
    assert load_toml(again / "config.toml") == cfg


def test_force_writes_into_an_existing_run(run_copy, capsys):
    run_cli(capsys, ["train", *TINY, "--epochs", "1", "-o", run_copy, "--force"])
    assert len(read_metrics(run_copy)[1]) == 1
    assert torch.load(run_copy / "checkpoint.pt", weights_only=True)["trainer"]["epoch"] == 1


@pytest.mark.parametrize("model", ["ae", "dae"])
def test_autoencoder_baselines(tmp_path, capsys, model):
    run = tmp_path / "run"
    run_cli(capsys, ["train", *TINY, "--model", model, "-o", run])
    assert load_toml(run / "config.toml")["model"] == model
    assert torch.load(run / "checkpoint.pt", weights_only=True)["family"] == model
    header, rows = read_metrics(run)
    assert len(rows) == 2 and all(float(r["train_kl"]) == 0 for r in rows)
    result = strict_json(run_cli(capsys, ["evaluate", run]))
    assert result["model"] == model and result["elbo"] is None  # no ELBO without a latent
    assert math.isfinite(result["recon"]) and result["kl"] == 0
    run_cli(capsys, ["sample", run, "-n", "4"])
    assert np.load(run / "samples-4.npy").shape == (4, 1, 8, 8)


def test_resume_continues_a_run(run_copy, tmp_path, capsys):
    _, before = read_metrics(run_copy)
    run_cli(capsys, ["train", "--resume", run_copy, "--epochs", "3"])
    _, rows = read_metrics(run_copy)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert rows[:2] == before
    assert torch.load(run_copy / "checkpoint.pt", weights_only=True)["trainer"]["epoch"] == 3
    # ... exactly as a run trained for 3 epochs in one go
    fresh = tmp_path / "fresh"
    run_cli(capsys, ["train", *TINY, "--epochs", "3", "-o", fresh])
    _, straight = read_metrics(fresh)
    for a, b in zip(rows, straight, strict=True):
        assert {k: v for k, v in a.items() if k not in ("seconds", "cpu_seconds")} == {
            k: v for k, v in b.items() if k not in ("seconds", "cpu_seconds")
        }


def test_run_without_held_out_data(tmp_path, capsys):
    """--val-fraction 0 and --test-fraction 0: training monitors the training loss."""
    run = tmp_path / "run"
    argv = ["train", *TINY, "--val-fraction", "0", "--test-fraction", "0", "-o", run]
    summary = strict_json(run_cli(capsys, argv))
    assert summary["val_loss"] is None and summary["epochs"] == 2
    _, rows = read_metrics(run)
    assert [r["val_loss"] for r in rows] == ["nan", "nan"]
    assert_png(run / "reconstructions.png")
    run_cli(capsys, ["train", "--resume", run, "--epochs", "3"])
    assert len(read_metrics(run)[1]) == 3
    assert main(["evaluate", str(run)]) == 2
    err = capsys.readouterr().err
    assert err == "pyrovae: error: the test split of 'digits' is empty (its fraction is 0); " + (
        "choose another --split\n"
    )
    assert strict_json(run_cli(capsys, ["evaluate", run, "--split", "train"]))["n"] == 1797


# -- evaluate, sample, components ---------------------------------------------------------


def test_evaluate(run_copy, capsys):
    result = strict_json(run_cli(capsys, ["evaluate", run_copy, "--particles", "2"]))
    assert json.loads((run_copy / "evaluation.json").read_text()) == result
    assert result["split"] == "test" and result["n"] == 180 and result["model"] == "vae"
    for key in ("elbo", "recon", "kl", "elbo_se", "recon_se", "kl_se"):
        assert math.isfinite(result[key]), key
    assert result["elbo"] == pytest.approx(result["recon"] - result["kl"], rel=1e-5)
    assert result["kl"] >= 0 and result["elbo"] < 0


def test_evaluate_other_split_to_other_file(run_copy, tmp_path, capsys):
    out = tmp_path / "reports" / "val.json"
    result = strict_json(
        run_cli(capsys, ["evaluate", run_copy / "checkpoint.pt", "--split", "val", "--output", out])
    )
    assert result["split"] == "val" and result["n"] == 162
    assert json.loads(out.read_text()) == result
    assert not (run_copy / "evaluation.json").exists()


def test_sample(run_copy, capsys):
    paths = strict_json(run_cli(capsys, ["sample", run_copy, "-n", "9"]))
    assert paths == {"png": str(run_copy / "samples-9.png"), "npy": str(run_copy / "samples-9.npy")}
    assert_png(run_copy / "samples-9.png")
    samples = np.load(run_copy / "samples-9.npy")
    assert samples.shape == (9, 1, 8, 8) and samples.min() >= 0 and samples.max() <= 1


def test_sample_seed_and_output(run_copy, tmp_path, capsys):
    a, b, c = (tmp_path / "out" / name for name in ("a.png", "b.png", "c"))
    run_cli(capsys, ["sample", run_copy, "-n", "5", "--seed", "1", "--output", a, "--draw"])
    run_cli(capsys, ["sample", run_copy, "-n", "5", "--seed", "1", "--output", b, "--draw"])
    run_cli(capsys, ["sample", run_copy, "-n", "5", "--seed", "2", "--output", c, "--draw"])
    xa, xb = np.load(a.with_suffix(".npy")), np.load(b.with_suffix(".npy"))
    xc = np.load(tmp_path / "out" / "c.npy")
    assert np.array_equal(xa, xb) and not np.array_equal(xa, xc)
    assert set(np.unique(xa)) <= {0.0, 1.0}  # --draw: Bernoulli draws, not means
    assert_png(a)
    assert_png(tmp_path / "out" / "c.png")


def test_components_lists_every_registry(capsys):
    out = run_cli(capsys, ["components"])
    for heading, path in (
        ("model families", "pyrovae.models.MODELS"),
        ("priors", "pyrovae.priors.PRIORS"),
        ("likelihoods", "pyrovae.likelihoods.LIKELIHOODS"),
        ("guides", "pyrovae.guides.GUIDES"),
        ("networks", "pyrovae.nets.ENCODERS"),
        ("objectives", "pyrovae.objectives.OBJECTIVES"),
        ("beta schedules", "pyrovae.objectives.SCHEDULES"),
        ("datasets", "pyrovae.data.DATASETS"),
        ("scalings", "pyrovae.data.SCALERS"),
    ):
        assert f"{heading}:" in out
        mod, name = path.rsplit(".", 1)
        for component in getattr(importlib.import_module(mod), name).names():
            assert f"\n  {component} " in out, component
    for name in ("vae", "ae", "dae", "gaussian", "bernoulli", "digits", "standardize"):
        assert f"  {name} " in out


# -- tabular data ---------------------------------------------------------------------------


def test_tabular_csv_with_standardize_end_to_end(tmp_path, capsys, monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.normal(loc=[100.0, -50.0, 3.0], scale=[5.0, 2.0, 0.5], size=(300, 3))
    np.savetxt(tmp_path / "table.csv", x, delimiter=",", header="a,b,c", comments="")
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    argv = ["train", *TINY, "--data", "table.csv", "--scale", "standardize", "-o", run]
    run_cli(capsys, argv)
    cfg = load_toml(run / "config.toml")
    assert cfg["likelihood"] == "gaussian" and cfg["scale"] == "standardize"
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ckpt["data_shape"] == [3] and ckpt["data"]["scaler"]["method"] == "standardize"
    shift = ckpt["data"]["scaler"]["shift"]
    assert shift.shape == (3,) and np.allclose(shift.numpy(), x.mean(0), atol=1.0)
    assert_png(run / "reconstructions.png")
    assert_png(run / "samples.png")

    # evaluate and sample work from another folder too (the data path is recorded absolute)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = strict_json(run_cli(capsys, ["evaluate", run]))
    assert result["n"] == 30 and math.isfinite(result["elbo"])
    assert result["elbo"] == pytest.approx(result["recon"] - result["kl"], rel=1e-5)
    run_cli(capsys, ["sample", run, "-n", "200"])
    samples = np.load(run / "samples-200.npy")
    assert samples.shape == (200, 3)
    # samples come back in the data's units, not standardized ones
    assert np.all(np.abs(samples.mean(0) - x.mean(0)) < 3 * x.std(0))
    assert_png(run / "samples-200.png")
    run_cli(capsys, ["train", "--resume", run, "--epochs", "3"])
    assert len(read_metrics(run)[1]) == 3

    # other data given to evaluate is scaled with the run's scaler, not refitted: data
    # moved far away from the training data must score far worse
    np.save(tmp_path / "moved.npy", x + 50 * x.std(0))
    moved = strict_json(run_cli(capsys, ["evaluate", run, "--data", tmp_path / "moved.npy"]))
    assert moved["elbo"] < 10 * result["elbo"]
    np.save(tmp_path / "wide.npy", rng.normal(size=(100, 4)))
    assert main(["evaluate", str(run), "--data", str(tmp_path / "wide.npy")]) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and "rows of shape (4,); the run was trained on rows of shape (3,)" in err
    )


# -- the installed entry point ----------------------------------------------------------------


def test_installed_entry_point(tmp_path):
    exe = shutil.which("pyrovae")
    if exe is None:
        pytest.skip("the pyrovae entry point is not installed")
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == f"pyrovae {__version__}"
    # A damaged checkpoint on which torch warns before failing: the exit status is 2 and
    # stderr is still exactly one line (warnings are not printed before the error).
    (tmp_path / "checkpoint.pt").write_bytes(b"\x80\x04garbage" * 10)
    proc = subprocess.run(
        [exe, "evaluate", str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("pyrovae: error: ") and proc.stderr.count("\n") == 1
    assert str(tmp_path / "checkpoint.pt") in proc.stderr
