"""One writer per run folder: ``run.lock`` with the holder's PID and host, released on
exit, taken over when stale; a second writer fails with one line naming the holder.

The processes here are real: a second Python process holds the lock (or trains), and
readiness is awaited by polling with generous timeouts, never by sleeping."""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pyrovae.cli import main
from pyrovae.errors import RunLockedError
from pyrovae.runs import hold, read_holder
from pyrovae.runs.lock import lock_path, pid_alive, process_start
from pyrovae.runs.names import CHECKPOINT, CONFIG, LOCK

HOST = platform.node()
HAS_PROC = Path("/proc/self/stat").exists()
TIMEOUT = 300  # seconds; only ever waited out when something is broken

#: A process that holds ``argv[1]`` until its stdin closes.
HOLDER = """
import sys
from pyrovae.runs import hold
with hold(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""

#: A process that waits until its stdin closes (a live PID that holds no lock).
WAITER = "import sys; print('up', flush=True); sys.stdin.read()"


def _python(code: str, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    line = proc.stdout.readline()  # returns "" if the process dies first
    assert line.strip() in ("held", "up"), f"helper process failed (status {proc.poll()})"
    return proc


def _end(proc: subprocess.Popen) -> None:
    proc.stdin.close()
    proc.wait(timeout=TIMEOUT)
    proc.stdout.close()


def _reaped_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=TIMEOUT)
    assert not pid_alive(proc.pid)
    return proc.pid


def _write_lock(run: Path, **holder) -> bytes:
    run.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"host": HOST, "started": "2020-01-01T00:00:00+00:00", **holder})
    lock_path(run).write_text(text)
    return text.encode()


def _message(run: Path, pid: int) -> str:
    return (
        rf"run folder {re.escape(repr(str(run)))} is in use by process {pid} on "
        rf"{re.escape(HOST)} \(since [0-9T:+-]+\); wait for it to finish or stop it"
    )


# -- in one process ---------------------------------------------------------------------


def test_hold_names_this_process_and_removes_the_lock(tmp_path):
    run = tmp_path / "run"
    with hold(run) as lock:
        assert lock.held and sorted(p.name for p in run.iterdir()) == [LOCK]
        holder = read_holder(run)
        assert holder["pid"] == os.getpid() and holder["host"] == HOST
        assert holder["process_start"] == process_start(os.getpid())
    assert list(run.iterdir()) == []


def test_released_on_an_exception(tmp_path):
    with pytest.raises(KeyError), hold(tmp_path):
        raise KeyError("boom")
    assert not lock_path(tmp_path).exists()
    with hold(tmp_path):  # and can be taken again
        pass


def test_reentrant_in_one_thread_refused_in_another(tmp_path):
    errors = []

    def other():
        try:
            with hold(tmp_path):
                pass
        except RunLockedError as exc:
            errors.append(str(exc))

    with hold(tmp_path) as outer:
        with hold(tmp_path) as inner:
            assert inner is outer
        assert lock_path(tmp_path).exists()  # the inner release kept the outer hold
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert errors == [f"run folder {str(tmp_path)!r} is in use by another thread of this process"]
    assert not lock_path(tmp_path).exists()


def test_no_folder_holds_nothing(tmp_path):
    with hold(None) as lock:
        assert lock is None
    with hold(tmp_path / "absent", create=False) as lock:
        assert lock is None
    assert not (tmp_path / "absent").exists()


# -- stale and live holders ---------------------------------------------------------------


def test_a_stale_lock_of_an_ended_process_is_taken_over(tmp_path, caplog):
    pid = _reaped_pid()
    _write_lock(tmp_path, pid=pid)
    with caplog.at_level(logging.WARNING, logger="pyrovae"), hold(tmp_path):
        assert read_holder(tmp_path)["pid"] == os.getpid()
    assert f"taking over the stale lock of process {pid} on {HOST}" in caplog.text
    assert not lock_path(tmp_path).exists()


def test_a_live_process_named_in_the_lock_is_respected(tmp_path):
    """Where flock is not shared (some network file systems) the PID decides."""
    proc = _python(WAITER)
    try:
        before = _write_lock(tmp_path, pid=proc.pid, process_start=process_start(proc.pid))
        with pytest.raises(RunLockedError, match=_message(tmp_path, proc.pid)):
            with hold(tmp_path):
                pass
        assert lock_path(tmp_path).read_bytes() == before  # untouched
    finally:
        _end(proc)


@pytest.mark.skipif(not HAS_PROC, reason="process start times come from /proc")
def test_a_reused_pid_is_stale(tmp_path):
    proc = _python(WAITER)
    try:
        _write_lock(tmp_path, pid=proc.pid, process_start=process_start(proc.pid) - 1)
        with hold(tmp_path):
            assert read_holder(tmp_path)["pid"] == os.getpid()
    finally:
        _end(proc)


@pytest.mark.skipif(not HAS_PROC, reason="zombies are recognized from /proc")
def test_an_unreaped_process_is_stale(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + TIMEOUT
    while process_start(proc.pid) is not None:  # None once it is a zombie
        assert time.monotonic() < deadline, "the child did not end"
        time.sleep(0.02)
    try:
        _write_lock(tmp_path, pid=proc.pid)
        with hold(tmp_path):
            assert read_holder(tmp_path)["pid"] == os.getpid()
    finally:
        proc.wait(timeout=TIMEOUT)


def test_a_lock_from_another_host_is_respected_with_a_way_out(tmp_path):
    before = _write_lock(tmp_path, pid=1, host="elsewhere.invalid")
    lock = str(tmp_path / LOCK)
    with pytest.raises(RunLockedError) as info:
        with hold(tmp_path):
            pass
    assert str(info.value) == (
        f"run folder {str(tmp_path)!r} is in use by process 1 on elsewhere.invalid (since "
        f"2020-01-01T00:00:00+00:00); if that process has ended, delete {lock!r}"
    )
    assert lock_path(tmp_path).read_bytes() == before


def test_another_process_holding_the_lock_then_killed(tmp_path, caplog):
    """A holder's flock excludes a second process; SIGKILL (no clean-up at all) leaves
    the file behind, and the next writer takes it over."""
    proc = _python(HOLDER, str(tmp_path))
    try:
        before = lock_path(tmp_path).read_bytes()
        with pytest.raises(RunLockedError, match=_message(tmp_path, proc.pid)):
            with hold(tmp_path):
                pass
        assert lock_path(tmp_path).read_bytes() == before
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=TIMEOUT)
        proc.stdin.close()
        proc.stdout.close()
    assert read_holder(tmp_path)["pid"] == proc.pid  # left behind
    with caplog.at_level(logging.WARNING, logger="pyrovae"), hold(tmp_path):
        assert read_holder(tmp_path)["pid"] == os.getpid()
    assert f"stale lock of process {proc.pid}" in caplog.text


def test_a_holder_that_ends_normally_removes_the_lock(tmp_path):
    proc = _python(HOLDER, str(tmp_path))
    assert read_holder(tmp_path)["pid"] == proc.pid
    _end(proc)
    assert proc.returncode == 0 and not lock_path(tmp_path).exists()


# -- pyrovae train ------------------------------------------------------------------------


def _wait_for(condition, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"training ended (status {proc.returncode}) before {what}")
        assert time.monotonic() < deadline, f"no {what} after {TIMEOUT} s"
        time.sleep(0.05)


@pytest.mark.slow
def test_a_second_writer_fails_while_training_runs(tmp_path, capsys):
    """``train -o RUN --force`` and ``train --resume RUN`` while another process trains
    into RUN: each fails with one line naming the holder and writes nothing."""
    run = tmp_path / "run"
    log = open(tmp_path / "first.log", "w")
    first = subprocess.Popen(
        [sys.executable, "-m", "pyrovae.cli", "train", "-o", str(run), "--epochs", "100000",
         "--hidden", "16", "--latent-dim", "2", "--patience", "0", "--no-progress"],
        stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)},
    )  # fmt: skip
    try:
        _wait_for(
            lambda: (
                (read_holder(run) or {}).get("pid") == first.pid and (run / CHECKPOINT).exists()
            ),
            first,
            "lock and checkpoint",
        )
        config = (run / CONFIG).read_bytes()
        for argv in (
            ["train", "-o", str(run), "--force", "--epochs", "1", "--hidden", "8", "--no-progress"],
            ["train", "--resume", str(run), "--epochs", "200000", "--no-progress"],
        ):
            assert main(argv) == 2
            out, err = capsys.readouterr()
            assert out == ""
            assert re.fullmatch(f"pyrovae: error: {_message(run, first.pid)}\n", err), err
            assert (run / CONFIG).read_bytes() == config  # the first writer's options
            assert read_holder(run)["pid"] == first.pid
        assert first.poll() is None  # still training
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=TIMEOUT) == 128 + signal.SIGTERM
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        log.close()
    assert not lock_path(run).exists()
    assert "epochs = 100000" in (run / CONFIG).read_text()
