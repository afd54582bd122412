"""The suite's own fixtures: the global-state guard fails a test that leaks, and the
fake clock counts reads."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

CONFTEST = Path(__file__).resolve().parent / "conftest.py"


def _conftest():
    spec = importlib.util.spec_from_file_location("suite_conftest", CONFTEST)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_guard_restores_and_reports_torch_threads():
    mod = _conftest()
    n = torch.get_num_threads()
    with pytest.raises(mod.LeakedStateError, match=f"torch threads: {n} -> {n + 1}"):
        with mod.restoring_global_state():
            torch.set_num_threads(n + 1)
    assert torch.get_num_threads() == n


def test_guard_restores_and_reports_guarded_environment(monkeypatch):
    mod = _conftest()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    with pytest.raises(mod.LeakedStateError, match=r"\$OMP_NUM_THREADS: None -> '1'"):
        with mod.restoring_global_state():
            os.environ["OMP_NUM_THREADS"] = "1"
    assert "OMP_NUM_THREADS" not in os.environ
    with mod.restoring_global_state():  # a change undone inside is not a leak
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("WORLD_SIZE", "2")


def test_a_leaking_test_fails_the_run(tmp_path):
    """In a pytest run of its own, with this suite's conftest: the test that changes the
    thread count errors in teardown, the one that sets it back itself passes."""
    shutil.copy(CONFTEST, tmp_path / "conftest.py")
    (tmp_path / "test_leaks.py").write_text(
        textwrap.dedent(
            """
            import torch

            def test_leaks():
                torch.set_num_threads(torch.get_num_threads() + 1)

            def test_restores():
                n = torch.get_num_threads()
                torch.set_num_threads(n + 1)
                torch.set_num_threads(n)
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "ERROR test_leaks.py::test_leaks - conftest.LeakedStateError" in proc.stdout
    assert "PASSED test_leaks.py::test_restores" in proc.stdout
    # the leaking test's body passes; its teardown is the error
    assert "2 passed, 1 error" in proc.stdout


def test_fake_clock_advances_per_read(fake_clock):
    from pyrovae.training.trainer import CLOCKS

    fake_clock.cpu.tick = 0.5
    assert [CLOCKS["cpu"](), CLOCKS["cpu"](), CLOCKS["wall"]()] == [0.5, 1.0, 1.0]
    assert (fake_clock.cpu.reads, fake_clock.wall.reads) == (2, 1)
