"""Bad input gives one clear line naming the problem, through the Python API and the CLI.

Through the CLI, ``main([...])`` returns 2 and stderr is exactly one line starting with
``pyrovae: error:``; a run that fails before training leaves no run folder behind.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from pyrovae.api import ESTIMATORS, VAE, load
from pyrovae.cli import main
from pyrovae.data import load_data
from pyrovae.errors import CheckpointError, ConfigError, DataError, PyrovaeError
from pyrovae.training import load_checkpoint

SMALL = dict(epochs=1, hidden=(8,), latent_dim=2, batch_size=32)
TINY = ["--epochs", "1", "--hidden", "8", "--latent-dim", "2", "--no-progress"]


def cli_error(capsys, argv: list[str], *expected: str) -> str:
    """Run the CLI, check it failed with one line containing ``expected``; return the line."""
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith("pyrovae: error: ") and err.endswith("\n"), err
    assert err.count("\n") == 1, err
    for text in expected:
        assert text in err, err
    return err


def api_error(exc_type, fn, *expected: str) -> str:
    with pytest.raises(exc_type) as info:
        fn()
    msg = str(info.value)
    assert isinstance(info.value, PyrovaeError)
    assert msg and "\n" not in msg, msg
    for text in expected:
        assert text in msg, msg
    return msg


def train_argv(tmp_path: Path, *extra: str) -> list[str]:
    return ["train", *TINY, "-o", str(tmp_path / "run"), *extra]


def _rand(*shape: int) -> np.ndarray:
    return np.random.default_rng(0).random(shape)


def _with_value(value) -> np.ndarray:
    x = _rand(30, 4)
    x[7, 2] = value
    return x


# -- data: the same array through fit() and through a file given to the CLI ---------------

DATA_CASES = {
    # id: (array, problem named by fit(), problem named by the CLI)
    "nan": (_with_value(np.nan), "X contains 1 NaN or Inf", "contains 1 NaN or Inf value(s)"),
    "inf": (_with_value(np.inf), "X contains 1 NaN or Inf", "first at index (7, 2)"),
    "1d": (np.arange(30.0), "X must have at least 2 dimensions", "got shape (30,)"),
    "empty": (np.zeros((0, 4)), "X is empty (0 rows)", "is empty (0 rows)"),
    "no-features": (np.zeros((30, 0)), "X has no features", "has no features"),
    "strings": (np.array([["a", "b"]] * 30), "X must be numeric; got dtype <U1", "must be numeric"),
    "object": (
        np.array([[1.0, None]] * 30, dtype=object),
        "X must be numeric; got dtype object",
        "holds Python objects (dtype object)",
    ),
}


@pytest.mark.parametrize("case", DATA_CASES)
def test_bad_data_through_fit(case):
    x, expected, _ = DATA_CASES[case]
    api_error(DataError, lambda: VAE(**SMALL).fit(x), expected)


@pytest.mark.parametrize("case", DATA_CASES)
def test_bad_data_through_the_cli(tmp_path, capsys, case):
    x, _, expected = DATA_CASES[case]
    np.save(tmp_path / "x.npy", x, allow_pickle=True)
    cli_error(capsys, train_argv(tmp_path, "--data", str(tmp_path / "x.npy")), "x.npy", expected)
    assert not (tmp_path / "run").exists()


def test_nan_in_validation_data_through_fit():
    api_error(DataError, lambda: VAE(**SMALL).fit(_rand(30, 4), X_val=_with_value(np.nan)), "X_val")


def test_validation_rows_of_another_shape():
    api_error(
        DataError,
        lambda: VAE(**SMALL).fit(_rand(30, 4), X_val=_rand(10, 5)),
        "X_val has rows of shape (5,) but X has (4,)",
    )


def test_ragged_lists_through_fit():
    api_error(
        DataError, lambda: VAE(**SMALL).fit([[1.0, 2.0], [3.0]]), "cannot be read as an array"
    )


def test_nan_in_a_csv_file_through_the_cli(tmp_path, capsys):
    (tmp_path / "x.csv").write_text("a,b\n1,2\nnan,4\n5,6\n")
    cli_error(capsys, train_argv(tmp_path, "--data", str(tmp_path / "x.csv")), "NaN or Inf")


def test_bernoulli_data_outside_the_unit_interval(tmp_path, capsys):
    x = 3 * _rand(30, 4)
    msg = api_error(
        DataError, lambda: VAE(likelihood="bernoulli", **SMALL).fit(x), "bernoulli likelihood"
    )
    assert "[0, 1]" in msg and "rescale" in msg
    np.save(tmp_path / "x.npy", x)
    argv = train_argv(tmp_path, "--data", str(tmp_path / "x.npy"), "--likelihood", "bernoulli")
    cli_error(capsys, argv, "bernoulli likelihood needs values in [0, 1]")
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def fitted_tabular():
    return VAE(**SMALL).fit(_rand(30, 4))


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        (_rand(3, 5), "x has rows of shape (5,); the model expects (4,)"),
        (_rand(4), "x must have at least 2 dimensions"),
        (_with_value(np.nan), "x contains 1 NaN or Inf"),
        (np.array([["a"] * 4]), "x must be numeric"),
    ],
    ids=["wrong-width", "1d", "nan", "strings"],
)
def test_encode_bad_input_on_a_fitted_model(fitted_tabular, x, expected):
    api_error(DataError, lambda: fitted_tabular.encode(x), expected)


def test_decode_codes_of_the_wrong_size(fitted_tabular):
    api_error(DataError, lambda: fitted_tabular.decode(torch.zeros(3, 5)), "latent_dim is 2")


# -- unknown component names ------------------------------------------------------------

COMPONENTS = [
    # (option, bad name, did-you-mean hint or None)
    ("prior", "normall", "normal"),
    ("prior", "qqqqqq", None),
    ("likelihood", "gausian", "gaussian"),
    ("guide", "nromal", "normal"),
    ("net", "mpl", "mlp"),
    ("activation", "rleu", "relu"),
    ("objective", "trac", "trace"),
    ("beta_schedule", "linaer", "linear"),
    ("model", "vea", "vae"),
]


def _check_hint(msg: str, bad: str, hint: str | None) -> None:
    assert repr(bad) in msg and "choose from:" in msg
    assert (f"did you mean {hint!r}?" in msg) if hint else ("did you mean" not in msg)


@pytest.mark.parametrize(("option", "bad", "hint"), COMPONENTS)
def test_unknown_component_through_the_api(option, bad, hint):
    x = _rand(30, 4)
    if option == "model":
        fn = lambda: ESTIMATORS.get(bad)  # noqa: E731
    else:
        fn = lambda: VAE(**{option: bad}, **SMALL).fit(x)  # noqa: E731
    _check_hint(api_error(ConfigError, fn, "unknown"), bad, hint)


@pytest.mark.parametrize(("option", "bad", "hint"), COMPONENTS)
def test_unknown_component_through_the_cli(tmp_path, capsys, option, bad, hint):
    flag = "--" + option.replace("_", "-")
    err = cli_error(capsys, train_argv(tmp_path, flag, bad), "unknown")
    _check_hint(err, bad, hint)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--model", "dae", "--corruption", "masc"], "unknown corruption 'masc' (did you mean"),
        (["--scale", "standardise"], "unknown scaling 'standardise' (did you mean 'standardize'"),
        (["--data", "digts"], "unknown dataset 'digts' (did you mean 'digits'?)"),
        (["--likelihood-options", "scal=1"], "bad options for likelihood"),
        (["--likelihood-options", "scale"], "KEY=VALUE"),
    ],
)
def test_other_unknown_names_through_the_cli(tmp_path, capsys, argv, expected):
    cli_error(capsys, train_argv(tmp_path, *argv), expected)
    assert not (tmp_path / "run").exists()


def test_unknown_component_in_a_config_file(tmp_path, capsys):
    (tmp_path / "c.toml").write_text('prior = "normall"\n')
    err = cli_error(capsys, train_argv(tmp_path, "--config", str(tmp_path / "c.toml")))
    _check_hint(err, "normall", "normal")


# -- unreadable files --------------------------------------------------------------------

FILES = {
    # id: (file name, bytes or None for a missing file, expected message)
    "missing": ("nope.npy", None, "data file '{path}' does not exist"),
    "suffix": ("data.txt", b"1,2\n3,4\n", "unsupported type .txt; use .npy, .npz, .csv"),
    "garbage-npy": ("x.npy", b"this is not numpy", "it is not a valid NumPy .npy file"),
    "truncated-npy": ("x.npy", None, "cannot read data file"),
    "garbage-npz": ("x.npz", b"\x00\x01garbage", "it is not a valid NumPy .npz archive"),
    "ragged-csv": ("x.csv", b"1,2,3\n4,5\n6,7,8\n", "cannot read data file"),
    "text-csv": ("x.csv", b"a,b\n1,2\nx,y\n", "could not convert string 'x'"),
    "empty-csv": ("x.csv", b"", "has no data rows"),
    "header-only-csv": ("x.csv", b"a,b,c\n", "has no data rows"),
}


def _make_file(tmp_path: Path, case: str) -> str:
    name, content, _ = FILES[case]
    path = tmp_path / name
    if case == "truncated-npy":
        np.save(path, _rand(30, 4))
        path.write_bytes(path.read_bytes()[:200])
    elif content is not None:
        path.write_bytes(content)
    return str(path)


@pytest.mark.parametrize("case", FILES)
def test_unreadable_file_through_the_api(tmp_path, case):
    path = _make_file(tmp_path, case)
    api_error(DataError, lambda: load_data(path), FILES[case][2].format(path=path))


@pytest.mark.parametrize("case", FILES)
def test_unreadable_file_through_the_cli(tmp_path, capsys, case):
    path = _make_file(tmp_path, case)
    cli_error(capsys, train_argv(tmp_path, "--data", path), FILES[case][2].format(path=path))
    assert not (tmp_path / "run").exists()


# -- config files and option values -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("latent_dimm = 3\n", "unknown config file 'c.toml' key 'latent_dimm' (did you mean"),
        ("learnig_rate = 0.1\n", "key 'learnig_rate' (did you mean 'learning_rate'?)"),
        ("frobnicate = 1\n", "unknown config file 'c.toml' key 'frobnicate'"),
        ("latent_dim = 'two'\n", "option 'latent_dim': expected an integer; got 'two'"),
        ("epochs = 2.5\n", "option 'epochs': expected an integer; got 2.5"),
        ("hidden = ['a']\n", "option 'hidden': expected a list of integers"),
        ("download = 'sometimes'\n", "option 'download': expected true or false"),
        ("[model]\nlatent_dim = 3\n", "option 'model': expected a string"),
        ("latent_dim = = 3\n", "is not valid TOML"),
    ],
)
def test_bad_config_file(tmp_path, capsys, text, expected):
    (tmp_path / "c.toml").write_text(text)
    cli_error(capsys, train_argv(tmp_path, "--config", str(tmp_path / "c.toml")), expected)
    assert not (tmp_path / "run").exists()


def test_missing_config_file(tmp_path, capsys):
    cli_error(capsys, train_argv(tmp_path, "--config", str(tmp_path / "c.toml")), "does not exist")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--epochs", "many"], "option 'epochs': expected an integer; got 'many'"),
        (["--epochs", "0"], "epochs must be a positive integer; got 0"),
        (["--latent-dim", "-2"], "latent_dim must be a positive integer"),
        (["--batch-size", "0"], "batch_size must be a positive integer"),
        (["--learning-rate", "0"], "learning_rate must be > 0"),
        (["--beta", "inf"], "option 'beta': expected a finite number"),
        (["--beta", "-1"], "beta must be a finite number > 0"),
        (["--particles", "0"], "particles must be a positive integer"),
        (["--patience", "-3"], "patience must be an integer >= 0"),
        (["--val-fraction", "1.5"], "validation fraction must be in [0, 1)"),
        (["--hidden", "wide"], "option 'hidden': expected a list of integers"),
        (["--device", "toaster"], "option 'device': expected a torch device"),
        (["--model", "dae", "--noise", "-1"], "noise must be >= 0"),
        (["--net", "conv", "--data", "{tab}"], "conv networks need images"),
    ],
)
def test_bad_option_values(tmp_path, capsys, argv, expected):
    np.save(tmp_path / "tab.npy", _rand(30, 4))
    argv = [a.format(tab=tmp_path / "tab.npy") for a in argv]
    cli_error(capsys, train_argv(tmp_path, *argv), expected)
    assert not (tmp_path / "run").exists()


def test_bad_hyperparameters_through_the_api():
    x = _rand(30, 4)
    api_error(ConfigError, lambda: VAE(epochs=0).fit(x), "epochs must be a positive integer")
    api_error(
        ConfigError,
        lambda: VAE(**{**SMALL, "beta": -1.0}).fit(x),
        "beta must be a finite number > 0",
    )


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["train", "--latent-dimm", "3"], "unrecognized arguments: --latent-dimm"),
        (["trian"], "invalid choice: 'trian'"),
        (["sample", "run", "-n", "many"], "argument -n/--n: invalid int value: 'many'"),
    ],
)
def test_argparse_errors_are_one_line(capsys, argv, expected):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("pyrovae") and "error:" in err and err.count("\n") == 1
    assert expected in err


# -- run folders and checkpoints ----------------------------------------------------------


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("bad-input") / "run"
    assert main(["train", *TINY, "-o", str(run)]) == 0
    return run


@pytest.fixture
def run_copy(trained_run, tmp_path) -> Path:
    return Path(shutil.copytree(trained_run, tmp_path / "run"))


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def test_existing_run_folder_is_not_overwritten(run_copy, capsys):
    past = 1_000_000_000
    for p in run_copy.iterdir():
        os.utime(p, (past, past))
    before = _snapshot(run_copy)
    err = cli_error(capsys, ["train", *TINY, "-o", str(run_copy)], "already holds a run", "--force")
    assert str(run_copy) in err
    assert _snapshot(run_copy) == before


def test_output_that_is_a_file(tmp_path, capsys):
    (tmp_path / "out").write_text("keep me")
    cli_error(capsys, ["train", *TINY, "-o", str(tmp_path / "out")], "is a file")
    assert (tmp_path / "out").read_text() == "keep me"


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage", "pickle-garbage"])
def test_corrupt_checkpoint(run_copy, capsys, damage):
    ckpt = run_copy / "checkpoint.pt"
    data = ckpt.read_bytes()
    damaged = {
        "truncated": data[: len(data) // 2],
        "empty": b"",
        "garbage": bytes(range(256)) * 16,
        "pickle-garbage": b"\x80\x04garbage" * 10,  # torch warns before failing on this one
    }
    ckpt.write_bytes(damaged[damage])
    # with no previous checkpoint to fall back on, --resume must refuse too (the
    # fallback to checkpoint.prev.pt is tested in tests/training/test_faults.py)
    (run_copy / "checkpoint.prev.pt").unlink(missing_ok=True)
    before = _snapshot(run_copy)
    for argv in (
        ["evaluate", str(run_copy)],
        ["sample", str(run_copy), "-n", "4"],
        ["train", "--resume", str(run_copy), "--epochs", "3"],
    ):
        cli_error(capsys, argv, str(ckpt))
    api_error(CheckpointError, lambda: load(run_copy), str(ckpt))
    assert _snapshot(run_copy) == before  # no evaluation.json, nothing rewritten


def test_truncated_checkpoint_says_so(run_copy, capsys):
    ckpt = run_copy / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    cli_error(capsys, ["evaluate", str(run_copy)], "corrupt or truncated")


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"weights": torch.zeros(3)}, "is not a pyrovae checkpoint"),
        ([1, 2, 3], "is not a pyrovae checkpoint"),
        ({"format": "pyrovae-checkpoint", "version": 99}, "format version 99"),
        ({"format": "pyrovae-checkpoint", "version": 1}, "checkpoint lacks the entry 'family'"),
    ],
)
def test_foreign_checkpoint(tmp_path, capsys, payload, expected):
    torch.save(payload, tmp_path / "checkpoint.pt")
    cli_error(capsys, ["evaluate", str(tmp_path)], expected)


def test_missing_checkpoint(tmp_path, capsys):
    cli_error(capsys, ["evaluate", str(tmp_path / "nothing")], "no checkpoint at")
    cli_error(capsys, ["sample", str(tmp_path)], "no checkpoint at")
    cli_error(capsys, ["train", "--resume", str(tmp_path)], "no checkpoint to resume")


class MarkerPayload:
    """Unpickling this creates a file: the stand-in for arbitrary code execution."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_malicious_checkpoint_is_refused_without_running_it(run_copy, tmp_path, capsys):
    marker = tmp_path / "pwned"
    ckpt = load_checkpoint(run_copy)
    ckpt["params"]["evil"] = MarkerPayload(marker)
    torch.save(ckpt, run_copy / "checkpoint.pt")
    assert not marker.exists()

    api_error(CheckpointError, lambda: load_checkpoint(run_copy), "refusing to load")
    api_error(CheckpointError, lambda: load(run_copy), "refusing to load")
    for argv in (
        ["evaluate", str(run_copy)],
        ["sample", str(run_copy), "-n", "4"],
        ["train", "--resume", str(run_copy), "--epochs", "3"],
    ):
        cli_error(capsys, argv, "refusing to load", "pickled objects")
    assert not marker.exists()
    assert not (run_copy / "evaluation.json").exists()

    # the payload is live: unpickling it unsafely does create the marker
    torch.load(run_copy / "checkpoint.pt", weights_only=False)
    assert marker.exists()


def test_resume_may_only_change_epochs(run_copy, capsys):
    before = _snapshot(run_copy)
    cli_error(
        capsys,
        ["train", "--resume", str(run_copy), "--epochs", "3", "--latent-dim", "4"],
        "may change (got --latent-dim)",
    )
    cli_error(capsys, ["train", "--resume", str(run_copy), "--epochs", "zero"], "'epochs'")
    cli_error(capsys, ["train", "--resume", str(run_copy), "--epochs", "0"], "positive integer")
    for extra in (["--config", str(run_copy / "config.toml")], ["-o", str(run_copy / "x")]):
        cli_error(capsys, ["train", "--resume", str(run_copy), *extra], "takes no --config")
    assert _snapshot(run_copy) == before


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["evaluate", "{run}", "--particles", "0"], "--particles must be >= 1"),
        (["evaluate", "{run}", "--data", "{tab}"], "x has rows of shape (4,); the model expects"),
        (["evaluate", "{run}", "--data", "{nan}"], "NaN or Inf"),
        (["sample", "{run}", "-n", "0"], "-n must be >= 1"),
    ],
)
def test_bad_evaluate_and_sample_arguments(run_copy, tmp_path, capsys, argv, expected):
    np.save(tmp_path / "tab.npy", _rand(30, 4))
    np.save(tmp_path / "nan.npy", np.full((30, 1, 8, 8), np.nan))
    paths = {"run": run_copy, "tab": tmp_path / "tab.npy", "nan": tmp_path / "nan.npy"}
    cli_error(capsys, [a.format(**paths) for a in argv], expected)
    assert not (run_copy / "evaluation.json").exists()


def test_a_prior_built_from_the_guide_cannot_be_a_hierarchical_top_prior():
    est = ESTIMATORS.get("hvae")(prior="vamp", latent_dim=8, hidden=(16,), epochs=1)
    x = torch.rand(20, 12).round()
    with pytest.raises(ConfigError, match=r"has no q\(z2\|x\) .*; set top_from_x to use"):
        est.fit(x)
