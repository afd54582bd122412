"""The verbs that run long show tqdm bars on a terminal, and none under ``--no-progress``
or when stderr is not a terminal (a file, a pipe, pytest's capture)."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest

from pyrovae.cli import main


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(scope="module")
def run(tmp_path_factory, digits):
    folder = tmp_path_factory.mktemp("progress")
    np.save(folder / "x.npy", digits.train[:200].numpy())
    args = ["train", "--data", str(folder / "x.npy"), "--epochs", "1", "--hidden", "16"]
    assert main([*args, "--latent-dim", "2", "--no-progress", "-o", str(folder / "run")]) == 0
    return folder / "run"


FAST = ["--samples", "5", "--seed", "1"]
#: verb, its arguments after the run (``{out}``: a fresh folder), the bars it shows
CASES = {
    "evaluate": (["--output", "{out}/e.json", *FAST], ["log p(x)"]),
    "analyze": (
        ["--output", "{out}", "--n", "10", "--draws", "5", "--mcmc-points", "0"]
        + ["--sbc", "100", *FAST],
        ["log p(x)", "SBC"],
    ),
    "select": (["--output", "{out}", *FAST], ["select", "log p(x)"]),
    "compare": (["--output", "{out}", "--n", "20", *FAST], ["compare"]),
}


def _bars(text: str) -> set[str]:
    """The descriptions of the tqdm bars in ``text`` (``DESC: NN%|...``)."""
    return set(re.findall(r"(?:^|\r)([^\r\n:]+):\s+\d+%\|", text))


@pytest.mark.parametrize("verb", list(CASES))
def test_bars_on_a_terminal_only(run, tmp_path, capsys, monkeypatch, verb):
    extra, bars = CASES[verb]

    def call(name, *flags) -> None:
        argv = [verb, str(run), *[a.format(out=tmp_path / name) for a in extra], *flags]
        (tmp_path / name).mkdir()
        assert main(argv) == 0

    terminal = _Terminal()
    with monkeypatch.context() as m:
        m.setattr("sys.stderr", terminal)
        call("shown")
    assert set(bars) <= _bars(terminal.getvalue()), terminal.getvalue()[-2000:]

    quiet = _Terminal()
    with monkeypatch.context() as m:
        m.setattr("sys.stderr", quiet)
        call("flag", "--no-progress")
    assert _bars(quiet.getvalue()) == set()

    capsys.readouterr()
    call("pipe")  # pytest's capture: not a terminal
    assert _bars(capsys.readouterr().err) == set()
