"""SIGINT (Ctrl-C) and SIGTERM (cluster schedulers) stop training after the current
step with a checkpoint of that exact position, a one-line message and the shell's
status 128 + signal; ``--resume`` continues as if nothing had happened.

Signals here are real: sent with ``os.kill`` to this process (at a chosen training
step, so the position is known) or to a ``pyrovae train`` subprocess once it has
written its first checkpoint (found by polling, never by sleeping a fixed time)."""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from pyrovae.api import VAE, resume
from pyrovae.cli import main
from pyrovae.errors import TrainingInterrupted
from pyrovae.runs import read_holder
from pyrovae.runs.names import CHECKPOINT, LOCK, METRICS
from pyrovae.training import load_checkpoint
from pyrovae.training.interrupt import StopRequest

SMALL = dict(hidden=(32,), latent_dim=2, batch_size=64, patience=0)  # 5 steps per epoch
SIGNALS = [signal.SIGINT, signal.SIGTERM]
TIMEOUT = 300  # seconds; only ever waited out when something is broken


def _losses(history):
    return [{k: v for k, v in r.items() if k not in ("seconds", "cpu_seconds")} for r in history]


def _same_params(a, b):
    for p, q in zip(a.module_.parameters(), b.module_.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def _await(condition, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"no {what} after {TIMEOUT} s"
        time.sleep(0.01)


# -- the handler --------------------------------------------------------------------------


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_stop_request_records_the_signal_and_restores_handlers(sig):
    before = {s: signal.getsignal(s) for s in SIGNALS}
    with StopRequest() as stop:
        assert all(signal.getsignal(s) not in (before[s], None) for s in SIGNALS)
        assert not stop.requested
        os.kill(os.getpid(), sig)
        _await(lambda: stop.requested, "signal")
        assert stop.signum == sig and stop.stopped_by == sig
        os.kill(os.getpid(), signal.SIGTERM)  # a repeated SIGTERM changes nothing
        with pytest.raises(KeyboardInterrupt):  # Ctrl-C once more stops at once
            os.kill(os.getpid(), signal.SIGINT)
            _await(lambda: False, "second signal")
        assert stop.signum == sig
    assert {s: signal.getsignal(s) for s in SIGNALS} == before


def test_an_ignored_signal_stays_ignored():
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        with StopRequest():
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_outside_the_main_thread_the_handlers_are_left_alone():
    before = {s: signal.getsignal(s) for s in SIGNALS}
    seen = []

    def run():
        with StopRequest():
            seen.append({s: signal.getsignal(s) for s in SIGNALS})

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen == [before]


# -- in the training loop (in this process, at a known step) ------------------------------


def signalling(sig: int, at: int):
    """The identity transform, sending ``sig`` to this process on its ``at``-th call
    (1-based), i.e. while minibatch ``at`` is prepared."""
    calls = {"n": 0}

    def f(xb, generator):
        calls["n"] += 1
        if calls["n"] == at:
            os.kill(os.getpid(), sig)
        return xb

    return f


def identity(xb, generator):
    return xb


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_a_signal_checkpoints_the_step_and_resumes_exactly(small_digits, tmp_path, sig):
    """The signal arrives while step 8 (epoch 2, its 3rd minibatch) is prepared: that
    step completes, the checkpoint holds epoch 1 done and 3 minibatches of epoch 2, and
    a resume ends bit-identical to an uninterrupted run."""
    x, xv = small_digits
    straight = VAE(epochs=3, **SMALL).fit(x, X_val=xv, train_transform=identity)
    run = tmp_path / "run"
    handlers = {s: signal.getsignal(s) for s in SIGNALS}
    with pytest.raises(TrainingInterrupted) as info:
        VAE(epochs=3, **SMALL).fit(x, X_val=xv, run_dir=run, train_transform=signalling(sig, 8))
    assert info.value.signum == sig and info.value.exit_status == 128 + sig
    assert str(info.value) == (
        f"training stopped by {sig.name} at step 8, in epoch 2; the checkpoint in "
        f"{str(run)!r} holds this position"
    )
    assert {s: signal.getsignal(s) for s in SIGNALS} == handlers  # restored
    assert not (run / LOCK).exists()  # released
    state = torch.load(run / CHECKPOINT, weights_only=True)["trainer"]
    assert state["epoch"] == 1 and state["step"] == 8
    assert state["partial_epoch"]["batch"] == 3
    with open(run / METRICS) as fh:
        assert [int(r["epoch"]) for r in csv.DictReader(fh)] == [1]
    resumed = resume(run, x, xv, train_transform=identity)
    assert _losses(resumed.history_) == _losses(straight.history_)
    _same_params(straight, resumed)


def test_a_signal_after_an_epochs_last_step_stops_before_the_next(small_digits, tmp_path):
    x, xv = small_digits
    run = tmp_path / "run"
    with pytest.raises(TrainingInterrupted, match="at step 10, after epoch 2; the checkpoint"):
        VAE(epochs=3, **SMALL).fit(
            x, X_val=xv, run_dir=run, train_transform=signalling(signal.SIGTERM, 10)
        )
    state = load_checkpoint(run / CHECKPOINT)["trainer"]
    assert state["epoch"] == 2 and state["step"] == 10 and state["partial_epoch"] is None


def test_a_signal_during_the_last_step_lets_training_finish(small_digits, tmp_path):
    x, xv = small_digits
    est = VAE(epochs=2, **SMALL).fit(
        x, X_val=xv, run_dir=tmp_path, train_transform=signalling(signal.SIGTERM, 10)
    )
    assert est.n_epochs_ == 2  # nothing left to stop: the run is complete


def test_without_a_run_folder_nothing_is_saved(small_digits):
    x, xv = small_digits
    with pytest.raises(TrainingInterrupted, match="no run folder, nothing saved"):
        VAE(epochs=3, **SMALL).fit(x, X_val=xv, train_transform=signalling(signal.SIGINT, 3))


# -- pyrovae train, signalled from outside ----------------------------------------------------


def _restore_sigint():
    """In the child: Ctrl-C as in a terminal (a shell may start background jobs with
    SIGINT ignored, which Python and pyrovae then leave ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_pyrovae_train_stops_on_a_signal_and_resumes(tmp_path, capsys, sig):
    run = tmp_path / "run"
    common = ["--hidden", "16", "--latent-dim", "2", "--patience", "0", "--no-progress",
              "--checkpoint-every", "4"]  # fmt: skip
    log = open(tmp_path / "train.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyrovae.cli", "train", "-o", str(run), "--epochs", "100000",
         *common],
        stdout=subprocess.DEVNULL, stderr=log, preexec_fn=_restore_sigint,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (run / CHECKPOINT).exists():
            assert proc.poll() is None, "training ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint"
            time.sleep(0.02)
        before = load_checkpoint(run / CHECKPOINT)["trainer"]["step"]
        assert read_holder(run)["pid"] == proc.pid
        proc.send_signal(sig)
        status = proc.wait(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log.seek(0)
    lines = log.read().splitlines()
    log.close()
    assert status == 128 + sig, lines
    ckpt = torch.load(run / CHECKPOINT, weights_only=True)  # plain data only
    epoch, step = ckpt["trainer"]["epoch"], ckpt["trainer"]["step"]
    partial = ckpt["trainer"]["partial_epoch"] is not None
    where = f"in epoch {epoch + 1}" if partial else f"after epoch {epoch}"
    assert lines[-1] == (
        f"pyrovae: training stopped by {sig.name} at step {step}, {where}; "
        f"the checkpoint in {str(run)!r} holds this position"
    )
    assert step > before  # written on the signal, after at least one more step
    assert not (run / LOCK).exists()
    # --resume continues from that position to one more epoch and ends exactly where an
    # uninterrupted run of that length ends
    assert main(["train", "--resume", str(run), "--epochs", str(epoch + 1), "--no-progress"]) == 0
    reference = tmp_path / "reference"
    argv = ["train", "-o", str(reference), "--epochs", str(epoch + 1), *common]
    assert main(argv) == 0
    capsys.readouterr()
    a, b = load_checkpoint(run / CHECKPOINT), load_checkpoint(reference / CHECKPOINT)
    assert a["trainer"]["epoch"] == epoch + 1 and a["trainer"]["partial_epoch"] is None
    assert _losses(a["trainer"]["history"]) == _losses(b["trainer"]["history"])
    for k in b["module"]:
        assert torch.equal(a["module"][k], b["module"][k]), k
    with open(run / METRICS) as fh:
        assert [int(r["epoch"]) for r in csv.DictReader(fh)] == list(range(1, epoch + 2))
    assert re.search(r"INFO pyrovae\.training\.interrupt: \w+ received", "\n".join(lines))


@pytest.mark.slow
def test_pyrovae_train_nproc_passes_sigterm_on(tmp_path):
    """SIGTERM to the launcher of ``--nproc 2`` only: it passes the signal on, the ranks
    stop together after the same step, rank 0 writes the checkpoint and says so once,
    and the run resumes."""
    run = tmp_path / "run"
    common = ["--hidden", "16", "--latent-dim", "2", "--patience", "0", "--no-progress",
              "--checkpoint-every", "4", "--nproc", "2"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    log = open(tmp_path / "train.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyrovae.cli", "train", "-o", str(run), "--epochs", "100000",
         *common],
        stdout=subprocess.DEVNULL, stderr=log, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (run / CHECKPOINT).exists():
            assert proc.poll() is None, "training ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint"
            time.sleep(0.02)
        holder = read_holder(run)["pid"]
        assert holder != proc.pid  # rank 0 holds the folder, not the launcher
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log.seek(0)
    text = log.read()
    log.close()
    assert status == 128 + signal.SIGTERM, text
    assert text.count("pyrovae: training stopped by SIGTERM") == 1, text
    assert text.splitlines()[-1].startswith("pyrovae: training stopped by SIGTERM at step")
    ckpt = torch.load(run / CHECKPOINT, weights_only=True)
    assert ckpt["trainer"]["world_size"] == 2
    assert not (run / LOCK).exists()
    epoch = ckpt["trainer"]["epoch"]
    resumed = subprocess.run(
        [sys.executable, "-m", "pyrovae.cli", "train", "--resume", str(run), "--epochs",
         str(epoch + 1), "--no-progress"],
        env=env, capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    with open(run / METRICS) as fh:
        assert [int(r["epoch"]) for r in csv.DictReader(fh)] == list(range(1, epoch + 2))
