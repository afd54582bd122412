"""Crash safety: atomic checkpoints with the previous one kept, fallback on a corrupt
checkpoint, mid-epoch checkpoints that resume exactly, and a run killed with SIGKILL
at random points that still finishes exactly like an uninterrupted one."""

from __future__ import annotations

import csv
import logging
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from pyrovae.api import VAE, resume
from pyrovae.cli import main
from pyrovae.data.binarize import draw_bernoulli
from pyrovae.errors import CheckpointError
from pyrovae.training import load_checkpoint, load_resumable, save_checkpoint
from pyrovae.training.checkpoint import previous_path

SMALL = dict(hidden=(32,), latent_dim=2, batch_size=64, patience=0)  # 5 steps per epoch


class Crash(Exception):
    """Stands in for the process dying."""


def crashing(transform, at: int):
    """``transform``, raising :class:`Crash` on its ``at``-th call (1-based)."""
    calls = {"n": 0}

    def f(xb, generator):
        calls["n"] += 1
        if calls["n"] == at:
            raise Crash
        return transform(xb, generator)

    return f


def identity(xb, generator):
    return xb


def _losses(history):
    return [{k: v for k, v in r.items() if k not in ("seconds", "cpu_seconds")} for r in history]


def _same_params(a, b):
    for p, q in zip(a.module_.parameters(), b.module_.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_save_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.pt"
    for i in range(3):
        save_checkpoint(path, {"i": i}, keep_previous=True)
    assert load_checkpoint(path)["i"] == 2
    assert load_checkpoint(previous_path(path))["i"] == 1
    assert previous_path(path).name == "checkpoint.prev.pt"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.prev.pt", "checkpoint.pt"]
    save_checkpoint(tmp_path / "model.pt", {"i": 0})  # estimators' save: no previous kept
    save_checkpoint(tmp_path / "model.pt", {"i": 1})
    assert not previous_path(tmp_path / "model.pt").exists()


def test_load_resumable_falls_back(tmp_path, caplog):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"i": 1}, keep_previous=True)
    save_checkpoint(path, {"i": 2}, keep_previous=True)
    assert load_resumable(tmp_path)[0]["i"] == 2
    path.write_bytes(path.read_bytes()[:100])  # truncated
    with caplog.at_level(logging.WARNING, logger="pyrovae"):
        ckpt, used = load_resumable(tmp_path)
    assert ckpt["i"] == 1 and used.name == "checkpoint.prev.pt"
    assert "corrupt or truncated; using the previous checkpoint" in caplog.text
    path.unlink()  # missing: the previous one too
    assert load_resumable(tmp_path)[0]["i"] == 1
    previous_path(path).write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_resumable(tmp_path)


def test_crash_leaves_the_last_two_epochs(small_digits, tmp_path):
    x, xv = small_digits
    with pytest.raises(Crash):  # dies in epoch 4 (the transform is called per batch)
        VAE(epochs=6, **SMALL).fit(
            x, X_val=xv, run_dir=tmp_path, train_transform=crashing(identity, 18)
        )
    assert load_checkpoint(tmp_path / "checkpoint.pt")["trainer"]["epoch"] == 3
    assert load_checkpoint(tmp_path / "checkpoint.prev.pt")["trainer"]["epoch"] == 2
    with open(tmp_path / "metrics.csv") as fh:
        assert [int(r["epoch"]) for r in csv.DictReader(fh)] == [1, 2, 3]


def test_corrupt_checkpoint_resumes_from_the_previous(small_digits, tmp_path, caplog):
    x, xv = small_digits
    straight = VAE(epochs=4, **SMALL).fit(x, X_val=xv, train_transform=identity)
    run = tmp_path / "run"
    with pytest.raises(Crash):
        VAE(epochs=4, **SMALL).fit(x, X_val=xv, run_dir=run, train_transform=crashing(identity, 13))
    ckpt = run / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    (run / ".checkpoint.pt.abc123.tmp").write_bytes(b"half a write")  # killed mid-write
    with caplog.at_level(logging.WARNING, logger="pyrovae"):
        resumed = resume(run, x, xv, train_transform=identity)
    assert "using the previous checkpoint checkpoint.prev.pt" in caplog.text
    assert (run / "checkpoint.corrupt.pt").exists() and not list(run.glob(".*.tmp"))
    assert [s["from_epoch"] for s in _sessions(run)] == [0, 1]  # epoch 2 was lost
    assert _losses(resumed.history_) == _losses(straight.history_)
    _same_params(straight, resumed)


def _sessions(run):
    import json

    return json.loads((run / "run.json").read_text())["sessions"]


def test_mid_epoch_checkpoint_resumes_exactly(small_digits, tmp_path):
    """Checkpoints every 3 steps (5 per epoch); a crash at step 14 resumes from step 12
    (epoch 3, 2 batches done) with the same permutation and the same dynamic
    binarization draws as an uninterrupted run."""
    x, xv = small_digits
    straight = VAE(epochs=4, **SMALL).fit(x, X_val=xv, train_transform=draw_bernoulli)
    run = tmp_path / "run"
    with pytest.raises(Crash):
        VAE(epochs=4, checkpoint_every=3, **SMALL).fit(
            x, X_val=xv, run_dir=run, train_transform=crashing(draw_bernoulli, 14)
        )
    state = load_checkpoint(run / "checkpoint.pt")["trainer"]
    assert state["epoch"] == 2 and state["step"] == 12
    assert state["partial_epoch"]["batch"] == 2
    resumed = resume(run, x, xv, train_transform=draw_bernoulli)
    assert _losses(resumed.history_) == _losses(straight.history_)
    _same_params(straight, resumed)
    assert load_checkpoint(run / "checkpoint.pt")["trainer"]["partial_epoch"] is None


def test_cli_resume_options(tmp_path, capsys):
    run = tmp_path / "run"
    common = ["--hidden", "16", "--latent-dim", "2", "--no-progress"]
    assert main(["train", "-o", str(run), "--epochs", "1", *common]) == 0
    capsys.readouterr()
    status = main(
        ["train", "--resume", str(run), "--epochs", "2", "--on-divergence", "rollback",
         "--checkpoint-every", "5", "--no-progress"]
    )  # fmt: skip
    assert status == 0
    ckpt = load_checkpoint(run / "checkpoint.pt")
    assert ckpt["params"]["on_divergence"] == "rollback" and ckpt["trainer"]["epoch"] == 2
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--epochs", "3", "--latent-dim", "4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(got --latent-dim)" in err


# -- SIGKILL at random points ----------------------------------------------------------------

#: 360 steps; each killed session parks (below) within PARK_MAX steps of its start,
#: so four kills (at most 240 steps) cannot reach the end of training however fast the
#: machine is.
KILL_EPOCHS = 30
KILL_WINDOW = 0.5
#: A killed session parks at a seeded number of reads of its budget clock between
#: these (one read per step, one per checkpoint; a checkpoint every 5 steps).
PARK_MIN, PARK_MAX = 15, 60
KILL_ARGS = [
    "--epochs", str(KILL_EPOCHS), "--hidden", "32", "--latent-dim", "2", "--patience", "0",
    "--checkpoint-every", "5", "--no-progress",
    "--time-budget", "1000000",  # so the budget clock is read after every step
]  # fmt: skip

#: ``pyrovae train`` whose budget clock parks the process at read PARK_AT (it then
#: sleeps until it is killed): the kill lands at a random moment before the park, or
#: at the park on a machine fast enough to get there first, never after the end.
PARKED_TRAIN = textwrap.dedent(
    """
    import os, sys, time
    from pyrovae.training.trainer import CLOCKS
    park, reads = int(os.environ["PARK_AT"]), [0]
    def clock():
        reads[0] += 1
        while reads[0] >= park:
            time.sleep(3600)
        return float(reads[0])
    CLOCKS["wall"] = clock
    from pyrovae.cli import main
    sys.exit(main(["train", *sys.argv[1:]]))
    """
)


def _metric_epochs(run) -> list[int]:
    with open(run / "metrics.csv") as fh:
        return [int(r["epoch"]) for r in csv.DictReader(fh)]


def _wait_for_new_checkpoint(proc, path, since: float, timeout: float = 600) -> bool:
    """Whether ``path`` was rewritten after ``since`` while ``proc`` runs (``timeout``
    only guards against a hang)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if path.exists() and path.stat().st_mtime_ns > since:
            return True
        time.sleep(0.02)
    raise AssertionError("no checkpoint written in time")


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume(tmp_path, capsys):
    """Kill ``pyrovae train`` with SIGKILL at 4 random points (seeded) while it trains
    (checkpoint every 5 steps, 12 steps per epoch; each session parks within
    :data:`PARK_MAX` steps, so a fast machine cannot finish first), resume until it
    finishes: every checkpoint loads, at most one epoch is lost per kill, metrics.csv
    always matches a prefix of the run, and the end result equals an uninterrupted run
    exactly."""
    rng = random.Random(7)
    run = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "pyrovae.cli", "train"]
    parked = [sys.executable, "-c", PARKED_TRAIN]
    args = ["-o", str(run), *KILL_ARGS]
    kills = []
    for _ in range(4):
        ckpt = run / "checkpoint.pt"
        since = ckpt.stat().st_mtime_ns if ckpt.exists() else 0
        park = {"PARK_AT": str(rng.randint(PARK_MIN, PARK_MAX))}
        proc = subprocess.Popen(
            parked + args, env={**env, **park}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        if not _wait_for_new_checkpoint(proc, ckpt, since):
            pytest.fail(f"training ended before it could be killed: {proc.stderr.read()}")
        time.sleep(rng.uniform(0.0, KILL_WINDOW))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        recorded = _metric_epochs(run)
        for name in ("checkpoint.pt", "checkpoint.prev.pt"):  # every checkpoint loads
            if (run / name).exists():
                torch.load(run / name, weights_only=True)
        state = load_checkpoint(run / "checkpoint.pt")["trainer"]
        kills.append((recorded[-1] if recorded else 0, state["epoch"], state["step"]))
        # metrics.csv is written just before the epoch's checkpoint: at most 1 epoch lost
        assert state["epoch"] <= (recorded[-1] if recorded else 0) <= state["epoch"] + 1
        assert recorded == list(range(1, len(recorded) + 1))
        assert [r["epoch"] for r in state["history"]] == list(range(1, state["epoch"] + 1))
        args = ["--resume", str(run), "--no-progress"]
    assert subprocess.run(cmd + args, env=env, capture_output=True).returncode == 0
    assert len({k[2] for k in kills}) == len(kills)  # killed at 4 different points
    reference = tmp_path / "reference"
    assert main(["train", "-o", str(reference), *KILL_ARGS]) == 0
    capsys.readouterr()
    a = load_checkpoint(run / "checkpoint.pt")
    b = load_checkpoint(reference / "checkpoint.pt")
    assert _losses(a["trainer"]["history"]) == _losses(b["trainer"]["history"])
    for k in b["module"]:
        assert torch.equal(a["module"][k], b["module"][k]), k
    assert _metric_epochs(run) == list(range(1, KILL_EPOCHS + 1))
    print("kills (metrics epoch, checkpoint epoch, checkpoint step):", kills)
