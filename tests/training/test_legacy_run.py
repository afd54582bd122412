"""Run folders written by an earlier pyrovae still load, evaluate and resume.

``tests/data/legacy_run`` holds a finished two-epoch run and a run stopped by its time
budget inside an epoch, both written before the trainer took its options as one object,
the objectives took beta as an argument and the programs took a batch (see its
README). Loading, evaluating and resuming them must give what that code gave
(``expected.json``). The tolerance is float32 rounding: the losses are float32 tensor
sums (accumulated in float64 over an epoch) whose summation order may change with the
number of torch threads; a difference in the code path (another draw, another row
order, another optimizer state) moves them by far more.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyro
import pytest

from pyrovae.api import VAE, load, resume
from pyrovae.training import load_checkpoint

LEGACY = Path(__file__).resolve().parents[1] / "data" / "legacy_run"
EXPECTED = json.loads((LEGACY / "expected.json").read_text())
#: Relative float32 rounding over sums of a few hundred terms.
REL = 1e-5
#: Columns that depend on the machine, not on the computation.
TIMING = ("seconds", "cpu_seconds")


def _copy(name: str, tmp_path: Path) -> Path:
    run = tmp_path / name
    shutil.copytree(LEGACY / name, run)
    return run


def _assert_history(got: list[dict], expected: list[dict]) -> None:
    assert [row["epoch"] for row in got] == [row["epoch"] for row in expected]
    for g, e in zip(got, expected, strict=True):
        for key, value in e.items():
            if key not in TIMING:
                assert g[key] == pytest.approx(value, rel=REL), (e["epoch"], key)


def test_legacy_run_loads_and_evaluates_as_before(digits):
    est = load(LEGACY / "finished")
    assert isinstance(est, VAE) and est.n_epochs_ == 2
    pyro.set_rng_seed(0)
    out = est.evaluate(digits.test, particles=2)
    for key, value in EXPECTED["finished_evaluate"].items():
        assert out[key] == pytest.approx(value, rel=REL), key


def test_legacy_run_resumes_as_before(digits, tmp_path):
    run = _copy("finished", tmp_path)
    est = resume(run, digits.train, digits.val, epochs=3)
    _assert_history(est.history_, EXPECTED["finished_resumed_history"])
    assert load_checkpoint(run / "checkpoint.pt")["trainer"]["epoch"] == 3


def test_legacy_mid_epoch_checkpoint_resumes_as_before(digits, tmp_path):
    run = _copy("mid_epoch", tmp_path)
    position = load_checkpoint(run / "checkpoint.pt")["trainer"]
    assert position["epoch"] == EXPECTED["mid_epoch_position"]["epoch"]
    assert position["partial_epoch"]["batch"] == EXPECTED["mid_epoch_position"]["batch"]
    est = resume(run, digits.train, digits.val, time_budget=1e9)
    _assert_history(est.history_, EXPECTED["mid_epoch_resumed_history"])


def test_legacy_run_through_the_cli(tmp_path, capsys):
    from pyrovae.cli import main

    run = _copy("finished", tmp_path)
    assert main(["evaluate", str(run)]) == 0
    assert json.loads((run / "evaluation.json").read_text())["n"] == 180
    assert main(["train", "--resume", str(run), "--epochs", "3", "--no-progress"]) == 0
    _assert_history(load(run).history_, EXPECTED["finished_resumed_history"])
