"""The ``pyrovae`` command as a whole: help, version, the verb it requires and its entry
points (the installed script and ``python -m pyrovae.cli``)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from pyrovae import __version__
from pyrovae.cli import build_parser, main
from pyrovae.config import OPTIONS


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


@pytest.mark.parametrize("verb", list(_subparsers()))
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


def test_python_m_pyrovae_cli_runs_the_command():
    proc = subprocess.run(
        [sys.executable, "-m", "pyrovae.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": ":".join(sys.path), "PATH": ""},
    )
    assert proc.returncode == 0 and proc.stdout.strip() == f"pyrovae {__version__}"


def test_help_and_version_do_not_import_torch():
    """Only ``train --help`` lists the registered components (and imports them)."""
    code = (
        "import contextlib, io, sys\n"
        "from pyrovae.cli import main\n"
        "for argv in (['--help'], ['--version'], ['evaluate', '--help'], ['train', '--help']):\n"
        "    out = io.StringIO()\n"
        "    try:\n"
        "        with contextlib.redirect_stdout(out):\n"
        "            main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "    print(argv[0], 'torch' in sys.modules, 'one of: ' in out.getvalue())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": ":".join(sys.path), "PATH": ""},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "--help False False",
        "--version False False",
        "evaluate False False",
        "train True True",
    ]
