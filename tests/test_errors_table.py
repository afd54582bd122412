"""The table of bad inputs in docs/errors.md: every row is run here.

:data:`ROWS` is the table: what is wrong, how it reaches pyrovae, and the exact line
the user gets (``pyrovae: error: ...`` on stderr with exit status 2 from the command
line; ``ErrorClass: message`` from Python). One test runs each row, in a fresh folder
that is the working directory, and checks the message word for word, that it is one
line, and that no file in the folder was created, changed or removed; another test
checks that docs/errors.md shows exactly these rows, so the two cannot drift apart.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from pyrovae.api import VAE, load
from pyrovae.cli import main
from pyrovae.errors import PyrovaeError
from pyrovae.priors import PRIORS
from pyrovae.runs.lock import process_start
from pyrovae.runs.names import LOCK
from pyrovae.training import load_checkpoint

DOC = Path(__file__).resolve().parents[1] / "docs" / "errors.md"
TINY = ["--epochs", "1", "--hidden", "8", "--latent-dim", "2", "--no-progress"]
TRAIN = ["train", *TINY, "-o", "run"]


@dataclass(frozen=True)
class Row:
    """One row of the table.

    ``setup(folder)`` writes the inputs into ``folder`` (the working directory) and
    returns either the command line (a list) or a function that calls the Python API.
    """

    problem: str
    given: str
    message: str
    setup: Callable[[Path], list[str] | Callable[[], object]] = field(repr=False)
    #: placeholders in ``message`` -> their text (lists that change with the registries)
    fill: Callable[[], dict[str, str]] = field(default=dict, repr=False)


# -- inputs ------------------------------------------------------------------------------


def _grid(value=None, at=(7, 2), fill=0.5) -> np.ndarray:
    x = np.full((30, 4), fill)
    if value is not None:
        x[at] = value
    return x


def _npy(arr: np.ndarray, name: str = "x.npy"):
    def setup(folder: Path):
        np.save(folder / name, arr, allow_pickle=True)
        return None

    return setup


def cli(*argv: str, before=None):
    def setup(folder: Path):
        if before is not None:
            before(folder)
        return list(argv)

    return setup


def api(fn: Callable[[Path], object], before=None):
    def setup(folder: Path):
        if before is not None:
            before(folder)
        return lambda: fn(folder)

    return setup


def _write(name: str, text: str):
    def setup(folder: Path):
        (folder / name).write_text(text)

    return setup


def _npz_with_labels(folder: Path):
    np.savez(folder / "x.npz", x=_grid(), y=np.arange(29))


def _truncated_npy(folder: Path):
    np.save(folder / "x.npy", _grid())
    (folder / "x.npy").write_bytes((folder / "x.npy").read_bytes()[:200])


_RUN: dict[str, Path] = {}  # the trained run, made once per session (fixture below)


def _model(folder: Path) -> Path:
    shutil.copy(_RUN["run"] / "checkpoint.pt", folder / "model.pt")
    return folder / "model.pt"


def _truncated_checkpoint(folder: Path):
    path = _model(folder)
    path.write_bytes(path.read_bytes()[:2000])


def _random_checkpoint(folder: Path):
    (folder / "model.pt").write_bytes(np.random.default_rng(0).bytes(4096))


class Marker:
    """Unpickling this creates the file ``pwned``: the stand-in for running code."""

    def __init__(self, folder: Path) -> None:
        self.path = str(folder / "pwned")

    def __reduce__(self):
        return (open, (self.path, "w"))


def _malicious_checkpoint(folder: Path):
    ckpt = load_checkpoint(_model(folder))
    ckpt["params"]["latent_dim"] = Marker(folder)
    torch.save(ckpt, folder / "model.pt")


def _other_config_checkpoint(folder: Path):
    ckpt = load_checkpoint(_model(folder))
    ckpt["params"]["latent_dim"] = 3  # the weights are those of a 2-dimensional code
    torch.save(ckpt, folder / "model.pt")


def _existing_run(folder: Path):
    shutil.copytree(_RUN["run"], folder / "run")


def _run_in_use(folder: Path):
    """A run folder whose lock names a live process on this host (this one's parent)."""
    _existing_run(folder)
    holder = {
        "pid": os.getppid(),
        "host": platform.node(),
        "started": "2020-01-01T00:00:00+00:00",
        "process_start": process_start(os.getppid()),
    }
    (folder / "run" / LOCK).write_text(json.dumps(holder))


def _holder() -> dict[str, str]:
    return {"<pid>": str(os.getppid()), "<host>": platform.node()}


def _registered(registry) -> Callable[[], dict[str, str]]:
    return lambda: {f"<registered {registry.kind}s>": ", ".join(registry.names())}


def _fit(x, y=None, **params):
    return lambda folder: VAE(epochs=1, hidden=(8,), latent_dim=2, **params).fit(x, y)


# -- the table ---------------------------------------------------------------------------

ROWS: dict[str, Row] = {
    "nan": Row(
        "NaN in the data",
        "`pyrovae train --data x.npy`",
        "pyrovae: error: data file 'x.npy' contains 1 NaN or Inf value(s), first at index "
        "(7, 2); missing entries (NaN) can be trained on with --missing mask (missing='mask')",
        cli(*TRAIN, "--data", "x.npy", before=_npy(_grid(np.nan))),
    ),
    "no-observed-entry": Row(
        "a row with no observed entry",
        '`VAE(missing="mask").fit(X)`',
        "DataError: X has 1 row(s) with no observed entry, first row 7",
        api(_fit(_grid(np.nan, at=7), missing="mask")),
    ),
    "inf": Row(
        "Inf in the data",
        "`VAE().fit(X)`",
        "DataError: X contains 1 NaN or Inf value(s), first at index (7, 2)",
        api(_fit(_grid(np.inf))),
    ),
    "nan-stream": Row(
        "NaN in a streamed file",
        "`pyrovae train --data x.npy --stream`",
        "pyrovae: error: data file 'x.npy' contains 1 NaN or Inf value(s), first at index (7, 2)",
        cli(*TRAIN, "--data", "x.npy", "--stream", before=_npy(_grid(np.nan))),
    ),
    "1d": Row(
        "one dimension only (no feature axis)",
        "`VAE().fit(np.arange(30.0))`",
        "DataError: X must have at least 2 dimensions (N, features...); got shape (30,)",
        api(_fit(np.arange(30.0))),
    ),
    "strings": Row(
        "text instead of numbers",
        "`pyrovae train --data x.npy` (an array of strings)",
        "pyrovae: error: data file 'x.npy' must be numeric; got dtype <U1",
        cli(*TRAIN, "--data", "x.npy", before=_npy(np.array([["a", "b"]] * 30))),
    ),
    "objects": Row(
        "Python objects instead of numbers",
        "`pyrovae train --data x.npy` (dtype object)",
        "pyrovae: error: cannot read data file 'x.npy': it holds Python objects (dtype object), "
        "not a numeric array",
        cli(*TRAIN, "--data", "x.npy", before=_npy(np.array([[1.0, None]] * 30, dtype=object))),
    ),
    "complex": Row(
        "complex numbers",
        "`VAE().fit(X)`",
        "DataError: X must be real-valued; got dtype complex128",
        api(_fit(np.ones((30, 4), dtype=complex))),
    ),
    "bernoulli": Row(
        "a value outside the likelihood's support (2.0 for a Bernoulli likelihood)",
        "`pyrovae train --data x.npy --likelihood bernoulli`",
        "pyrovae: error: the bernoulli likelihood needs values in [0, 1], but 1 value(s) lie "
        "outside it (e.g. 2; data range [0.5, 2]); choose another likelihood or rescale the data",
        cli(*TRAIN, "--data", "x.npy", "--likelihood", "bernoulli", before=_npy(_grid(2.0))),
    ),
    "poisson": Row(
        "a negative count for a Poisson likelihood",
        '`VAE(likelihood="poisson").fit(X)`',
        "DataError: the poisson likelihood needs non-negative integer counts, but 1 value(s) "
        "lie outside it (e.g. -1; data range [-1, 3]); choose another likelihood or rescale "
        "the data",
        api(_fit(_grid(-1.0, fill=3.0), likelihood="poisson")),
    ),
    "empty": Row(
        "an empty data set",
        "`pyrovae train --data x.npy` (shape (0, 4))",
        "pyrovae: error: data file 'x.npy' is empty (0 rows)",
        cli(*TRAIN, "--data", "x.npy", before=_npy(np.zeros((0, 4)))),
    ),
    "empty-csv": Row(
        "an empty CSV file",
        "`pyrovae train --data x.csv`",
        "pyrovae: error: data file 'x.csv' has no data rows",
        cli(*TRAIN, "--data", "x.csv", before=_write("x.csv", "a,b,c\n")),
    ),
    "labels-npz": Row(
        "labels that do not match the data",
        "`pyrovae train --data x.npz` (30 rows in `x`, 29 labels in `y`)",
        "pyrovae: error: labels 'y' in 'x.npz' have 29 rows but the data has 30",
        cli(*TRAIN, "--data", "x.npz", before=_npz_with_labels),
    ),
    "labels-fit": Row(
        "labels that do not match the data",
        "`VAE().fit(X, y)` (30 rows, 29 labels)",
        "DataError: y has 29 labels but X has 30 rows",
        api(_fit(_grid(), np.arange(29))),
    ),
    "truncated-npy": Row(
        "a .npy file cut short",
        "`pyrovae train --data x.npy`",
        "pyrovae: error: cannot read data file 'x.npy': it is truncated (200 bytes; its header "
        "promises shape (30, 4) of float64, 1088 bytes)",
        cli(*TRAIN, "--data", "x.npy", before=_truncated_npy),
    ),
    "missing-data": Row(
        "a data file that does not exist",
        "`pyrovae train --data nope.npy`",
        "pyrovae: error: data file 'nope.npy' does not exist",
        cli(*TRAIN, "--data", "nope.npy"),
    ),
    "columns": Row(
        "a column name that is not in the file",
        "`pyrovae train --data t.csv --columns d`",
        "pyrovae: error: --columns: column 'd' is not in 't.csv'; the header has: a, b, c",
        cli(*TRAIN, "--data", "t.csv", "--columns", "d", before=_write("t.csv", "a,b,c\n1,2,3\n")),
    ),
    "drop-columns": Row(
        "a column to leave out that is not in the file",
        "`pyrovae train --data t.csv --drop-columns d`",
        "pyrovae: error: --drop-columns: column 'd' is not in 't.csv'; the header has: a, b, c",
        cli(
            *TRAIN,
            "--data",
            "t.csv",
            "--drop-columns",
            "d",
            before=_write("t.csv", "a,b,c\n1,2,3\n"),
        ),
    ),
    "drop-every-column": Row(
        "leaving out every column",
        "`pyrovae train --data t.csv --drop-columns a,b,c`",
        "pyrovae: error: no feature columns of 't.csv' are left after leaving out 'a', 'b', 'c'",
        cli(
            *TRAIN,
            "--data",
            "t.csv",
            "--drop-columns",
            "a,b,c",
            before=_write("t.csv", "a,b,c\n1,2,3\n"),
        ),
    ),
    "stream-csv": Row(
        "streaming a file that is not .npy",
        "`pyrovae train --data t.csv --stream`",
        "pyrovae: error: --stream reads .npy files; save 't.csv' with numpy.save to stream it",
        cli(*TRAIN, "--data", "t.csv", "--stream", before=_write("t.csv", "a,b,c\n1,2,3\n")),
    ),
    "truncated-checkpoint": Row(
        "a truncated checkpoint",
        "`pyrovae evaluate model.pt`",
        "pyrovae: error: checkpoint 'model.pt' is corrupt or truncated",
        cli("evaluate", "model.pt", before=_truncated_checkpoint),
    ),
    "random-checkpoint": Row(
        "a corrupted checkpoint (random bytes)",
        "`pyrovae sample model.pt`",
        "pyrovae: error: checkpoint 'model.pt' is corrupt or truncated",
        cli("sample", "model.pt", before=_random_checkpoint),
    ),
    "malicious-checkpoint": Row(
        "a checkpoint carrying a pickled program (refused, never run)",
        "`pyrovae evaluate model.pt`",
        "pyrovae: error: refusing to load 'model.pt': it holds pickled objects other than "
        "tensors and plain data",
        cli("evaluate", "model.pt", before=_malicious_checkpoint),
    ),
    "other-config": Row(
        "a checkpoint whose weights do not fit its configuration",
        '`pyrovae.api.load("model.pt")`',
        "CheckpointError: the checkpoint's weights do not fit the model its configuration "
        "describes: decoder.net.0.weight has shape [8, 2] in the checkpoint but [8, 3] in the "
        "model (and 4 more)",
        api(lambda folder: load("model.pt"), before=_other_config_checkpoint),
    ),
    "component": Row(
        "an unknown component name",
        "`pyrovae train --prior normall`",
        "pyrovae: error: unknown prior 'normall' (did you mean 'normal'?); choose from: "
        "<registered priors>",
        cli(*TRAIN, "--prior", "normall"),
        _registered(PRIORS),
    ),
    "config-key": Row(
        "a mistyped key in a TOML config file",
        "`pyrovae train --config c.toml` with `latent_dimm = 3`",
        "pyrovae: error: unknown config file 'c.toml' key 'latent_dimm' (did you mean "
        "'latent_dim'?)",
        cli(*TRAIN, "--config", "c.toml", before=_write("c.toml", "latent_dimm = 3\n")),
    ),
    "config-value": Row(
        "a value of the wrong type in a TOML config file",
        '`pyrovae train --config c.toml` with `epochs = "many"`',
        "pyrovae: error: option 'epochs': expected an integer; got 'many'",
        cli(*TRAIN, "--config", "c.toml", before=_write("c.toml", 'epochs = "many"\n')),
    ),
    "run-exists": Row(
        "a run folder that already holds a run (never overwritten without --force)",
        "`pyrovae train -o run`",
        "pyrovae: error: run folder 'run' already holds a run; use --force to write into it "
        "or choose another --output",
        cli(*TRAIN, before=_existing_run),
    ),
    "run-in-use": Row(
        "a run folder another process is training into",
        "`pyrovae train -o run --force` (or `--resume run`)",
        "pyrovae: error: run folder 'run' is in use by process <pid> on <host> (since "
        "2020-01-01T00:00:00+00:00); wait for it to finish or stop it",
        cli(*TRAIN, "--force", before=_run_in_use),
        _holder,
    ),
    "condition-column": Row(
        "a condition column that is not in the file",
        "`pyrovae train --model cvae --data t.csv --condition-columns d`",
        "pyrovae: error: --condition-columns: column 'd' is not in 't.csv'; the header has: "
        "a, b, c",
        cli(
            *TRAIN,
            "--model",
            "cvae",
            "--data",
            "t.csv",
            "--condition-columns",
            "d",
            before=_write("t.csv", "a,b,c\n1,2,3\n"),
        ),
    ),
    "cvae-without-conditions": Row(
        "a conditional model on data without labels or conditions",
        "`pyrovae train --model cvae --data x.npy`",
        "pyrovae: error: the cvae model needs the condition of every training row, class "
        "labels or covariates (y in Python; a labelled dataset, --label-column or "
        "--condition-columns on the command line)",
        cli(*TRAIN, "--model", "cvae", "--data", "x.npy", before=_npy(_grid())),
    ),
    "conditional-prior": Row(
        "a conditional prior in an unconditional model",
        "`pyrovae train --prior conditional`",
        "pyrovae: error: the conditional prior reads a condition, which the VAE model has "
        "none of; use it with a conditional model (--model cvae)",
        cli(*TRAIN, "--prior", "conditional"),
    ),
    "option-value": Row(
        "an option value out of range",
        "`pyrovae train --epochs 0`",
        "pyrovae: error: epochs must be a positive integer; got 0",
        cli(*TRAIN, "--epochs", "0"),
    ),
    "complete-mask-shape": Row(
        "a mask of another shape than the rows to complete",
        "`pyrovae complete model.pt --data p.npy --mask m.npy`",
        "pyrovae: error: the mask has shape (2, 60) but PARTIAL has (2, 64)",
        cli(
            "complete",
            "model.pt",
            "--data",
            "p.npy",
            "--mask",
            "m.npy",
            before=lambda folder: (_partial(folder), np.save(folder / "m.npy", np.ones((2, 60)))),
        ),
    ),
    "complete-empty-row": Row(
        "a row to complete with no observed entry",
        "`pyrovae complete model.pt --data p.npy`",
        "pyrovae: error: PARTIAL has 1 row(s) with no observed entry, first row 1",
        cli("complete", "model.pt", "--data", "p.npy", before=lambda f: _partial(f, empty=1)),
    ),
    "complete-features": Row(
        "rows to complete with another number of features than the run's",
        "`pyrovae complete model.pt --data p.npy`",
        "pyrovae: error: PARTIAL has 60 features per row; the run's model has 64",
        cli("complete", "model.pt", "--data", "p.npy", before=lambda f: _partial(f, features=60)),
    ),
    "bayesian-layers": Row(
        "choosing Bayesian decoder layers without a Bayesian decoder",
        "`pyrovae train --bayesian-layers last`",
        "pyrovae: error: bayesian_layers needs bayesian_decoder (the decoder is a point estimate)",
        cli(*TRAIN, "--bayesian-layers", "last"),
    ),
    "weight-posterior": Row(
        "choosing a weight posterior without a Bayesian decoder",
        "`pyrovae train --weight-posterior rank1`",
        "pyrovae: error: weight_posterior needs bayesian_decoder (the decoder is a point estimate)",
        cli(*TRAIN, "--weight-posterior", "rank1"),
    ),
    "decoder-prior-scale": Row(
        "a non-positive prior scale for the decoder weights",
        "`pyrovae train --bayesian-decoder --decoder-prior-scale 0`",
        "pyrovae: error: decoder_prior_scale must be > 0; got 0.0",
        cli(*TRAIN, "--bayesian-decoder", "--decoder-prior-scale", "0"),
    ),
    "decoder-prior-scale-api": Row(
        "a non-positive prior scale for the decoder weights",
        "`VAE(bayesian_decoder=True, decoder_prior_scale=-1.0).fit(X)`",
        "ConfigError: decoder_prior_scale must be > 0; got -1.0",
        api(_fit(_grid(), bayesian_decoder=True, decoder_prior_scale=-1.0)),
    ),
    "bayesian-ae": Row(
        "a Bayesian decoder for the autoencoder baseline (it has no latent variables)",
        "`pyrovae train --model ae --bayesian-decoder`",
        "pyrovae: error: bayesian_decoder needs a model with latent variables (vae, hvae); "
        "the ae model has none",
        cli(*TRAIN, "--likelihood", "bernoulli", "--model", "ae", "--bayesian-decoder"),
    ),
    "bayesian-dae": Row(
        "a Bayesian decoder for the denoising autoencoder baseline",
        "`pyrovae train --model dae --bayesian-decoder`",
        "pyrovae: error: bayesian_decoder needs a model with latent variables (vae, hvae); "
        "the dae model has none",
        cli(*TRAIN, "--likelihood", "bernoulli", "--model", "dae", "--bayesian-decoder"),
    ),
    "bayesian-m2": Row(
        "a Bayesian decoder for the semi-supervised m2 model",
        "`pyrovae train --model m2 --bayesian-decoder`",
        "pyrovae: error: bayesian_decoder is available for the vae and hvae families, not m2",
        cli(*TRAIN, "--likelihood", "bernoulli", "--model", "m2", "--bayesian-decoder"),
    ),
    "bayesian-objective": Row(
        "an objective that draws the decoder weights per particle (iwae, iwae-dreg, freebits)",
        '`VAE(bayesian_decoder=True, objective="iwae").fit(X)`',
        "ConfigError: the iwae objective cannot score the Bayesian decoder's global weight "
        "sites (it would draw them per particle); use trace or meanfield",
        api(_fit(_grid(), bayesian_decoder=True, objective="iwae")),
    ),
    "bayesian-objective-cli": Row(
        "an objective that cannot score the decoder weights, on the command line",
        "`pyrovae train --bayesian-decoder --objective iwae-dreg`",
        "pyrovae: error: the iwae-dreg objective cannot score the Bayesian decoder's global "
        "weight sites (it would draw them per particle); use trace or meanfield",
        cli(*TRAIN, "--bayesian-decoder", "--objective", "iwae-dreg"),
    ),
}


def _partial(folder: Path, features: int = 64, empty: int | None = None) -> None:
    """``model.pt`` and ``p.npy``: two rows of the digits' size, half of them missing."""
    _model(folder)
    x = np.full((2, features), 0.5)
    x[:, features // 2 :] = np.nan
    if empty is not None:
        x[empty] = np.nan
    np.save(folder / "p.npy", x)


# -- running the rows -----------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def trained_run(tmp_path_factory):
    """A one-epoch run on the digits, copied into the rows that need a checkpoint."""
    folder = tmp_path_factory.mktemp("errors-table")
    assert main(["train", *TINY, "-o", str(folder / "run")]) == 0
    _RUN["run"] = folder / "run"
    yield
    _RUN.clear()


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int] | None]:
    """Every file (bytes, modification time) and folder under ``folder``."""
    out: dict[str, tuple[bytes, int] | None] = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        out[rel] = (p.read_bytes(), p.stat().st_mtime_ns) if p.is_file() else None
    return out


def _expected(row: Row) -> str:
    text = row.message
    for placeholder, value in row.fill().items():
        text = text.replace(placeholder, value)
    return text


@pytest.mark.parametrize("case", ROWS)
def test_row(case, tmp_path, monkeypatch, capsys):
    row = ROWS[case]
    monkeypatch.chdir(tmp_path)
    action = row.setup(tmp_path)
    before = _snapshot(tmp_path)
    if isinstance(action, list):
        status = main(action)
        err = capsys.readouterr().err
        assert status == 2, err
        assert err == _expected(row) + "\n"
    else:
        with pytest.raises(PyrovaeError) as info:
            action()
        assert f"{type(info.value).__name__}: {info.value}" == _expected(row)
    assert _snapshot(tmp_path) == before  # nothing created, changed or removed
    assert not (tmp_path / "pwned").exists()


def test_the_malicious_payload_is_live(tmp_path):
    """The malicious-checkpoint row would notice execution: unpickling it unsafely does
    create the marker file."""
    _malicious_checkpoint(tmp_path)
    torch.load(tmp_path / "model.pt", weights_only=False)
    assert (tmp_path / "pwned").exists()


def _doc_rows() -> list[tuple[str, str, str]]:
    rows = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if not line.startswith("| ") or line.startswith(("| Problem", "|---")):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        problem, given, message = (c.replace("\\|", "|") for c in cells)
        assert message.startswith("`") and message.endswith("`"), line
        rows.append((problem, given, message[1:-1]))
    return rows


def test_docs_show_exactly_these_rows():
    assert _doc_rows() == [(r.problem, r.given, r.message) for r in ROWS.values()]
