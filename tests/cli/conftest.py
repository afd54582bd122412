"""Fixtures of the command-line tests: a small digits run trained once, copies of it for
tests that change it, and helpers that run the command in-process with ``main([...])``."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from pyrovae.cli import main

#: Training options of the shared run: two epochs of a tiny VAE on the digits.
TINY = ["--epochs", "2", "--hidden", "32", "--latent-dim", "2", "--no-progress"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run_cli(capsys, argv: list) -> str:
    """Run the CLI, assert success and return its stdout."""
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert status == 0, err
    return out


def _strict_json(text: str):
    """Parse JSON, refusing the non-standard NaN / Infinity tokens."""

    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def _read_metrics(run: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(run / "metrics.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def _assert_png(path: Path) -> None:
    assert path.is_file() and path.read_bytes()[:8] == PNG_MAGIC, path


@pytest.fixture
def run_cli():
    """``run_cli(capsys, argv)``: run the CLI, assert success, return its stdout."""
    return _run_cli


@pytest.fixture
def strict_json():
    """``strict_json(text)``: JSON without NaN or Infinity tokens."""
    return _strict_json


@pytest.fixture
def read_metrics():
    """``read_metrics(run)``: the header and rows of ``run/metrics.csv``."""
    return _read_metrics


@pytest.fixture
def assert_png():
    """``assert_png(path)``: the file is a PNG."""
    return _assert_png


@pytest.fixture(scope="session")
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
