"""Data-parallel training (DistributedDataParallel, gloo, 2 CPU processes).

One launch of 2 processes runs several scenarios (:func:`_worker`) and saves each
rank's results; the tests compare the ranks with each other and with single-process
runs on the same global batches.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pyrovae.api import AE, VAE
from pyrovae.data.binarize import draw_bernoulli
from pyrovae.training import distributed as D
from pyrovae.training import load_checkpoint
from pyrovae.training.trainer import CLOCKS

SMALL = dict(hidden=(32,), latent_dim=2, patience=0)
#: 300 rows in global batches of 70: 5 per epoch, the last of 20 rows (281 rows for the
#: autoencoder: the last batch has 1 row, so rank 1's slice of it is empty); 100
#: validation rows in batches of 512: one, so rank 1 validates nothing
SIZES = dict(batch_size=70)
AE_ROWS = 281


class _NaNOnce:
    """Objective wrapper: the training loss is NaN on the ``at``-th call of this rank."""

    def __init__(self, inner, at: int) -> None:
        self.inner, self.at, self.calls = inner, at, 0

    def __call__(self, model, guide, batch, beta=1.0):
        terms = self.inner(model, guide, batch, beta=beta)
        if torch.is_grad_enabled():
            self.calls += 1
            if self.calls == self.at:
                terms.loss = terms.loss * math.nan
        return terms

    def __getattr__(self, name):
        return getattr(self.inner, name)


class Crash(Exception):
    """Stands in for the processes dying."""


def _crash_at(at: int):
    calls = {"n": 0}

    def identity(xb, generator):
        calls["n"] += 1
        if calls["n"] == at:
            raise Crash
        return xb

    return identity


class _TickClock:
    """A clock that advances ``tick`` seconds per read (``conftest.FakeClock``, which the
    spawned ranks cannot import)."""

    def __init__(self, tick: float) -> None:
        self.tick, self.now = tick, 0.0

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


def _params(est):
    return [p.detach().clone() for p in est.module_.parameters()]


def _worker(out: str) -> None:
    """Runs in each of the 2 processes (started by :func:`pyrovae.training.distributed.launch`)."""
    import warnings

    import pyro

    from pyrovae.api import resume
    from pyrovae.data import load_data

    out = Path(out)
    ctx = D.init_from_env("cpu")
    d = load_data("digits")
    x, xv = d.train[:300], d.val[:100]
    res = {"rank": ctx.rank, "world": ctx.world_size}
    # 1. an autoencoder (no sampled latents) with dynamic binarization
    ae = AE(epochs=3, **SMALL, **SIZES).fit(
        x[:AE_ROWS], X_val=xv, run_dir=out / "ae", train_transform=draw_bernoulli
    )
    res["ae"] = {"params": _params(ae), "history": ae.history_}
    # 2. a VAE, straight and stopped after 2 epochs then resumed to 4
    vae = VAE(epochs=4, **SMALL, **SIZES).fit(x, X_val=xv, run_dir=out / "vae")
    VAE(epochs=2, **SMALL, **SIZES).fit(x, X_val=xv, run_dir=out / "vae2")
    torch.manual_seed(123 + ctx.rank)  # resuming restores every rank's streams itself
    resumed = resume(out / "vae2", x, xv, epochs=4)
    res["vae"] = {"params": _params(vae), "history": vae.history_}
    res["resumed"] = {"params": _params(resumed), "history": resumed.history_}
    # 2b. checkpoints every 3 steps, all ranks die at step 14, resume from step 12
    try:
        VAE(epochs=4, checkpoint_every=3, **SMALL, **SIZES).fit(
            x, X_val=xv, run_dir=out / "mid", train_transform=_crash_at(14)
        )
    except Crash:
        pass
    mid = resume(out / "mid", x, xv, train_transform=_crash_at(0))
    res["mid"] = {"params": _params(mid), "history": mid.history_}
    # 3. a CPU-time budget: the ranks' clocks differ, they still stop together. The
    # clocks are fake (rank r advances (r + 1) / 64 s per read: one read per step), so
    # rank 1 spends 1 s in 64 reads, rank 0 would need 128, whatever the machine's speed
    clocks = dict(CLOCKS)
    CLOCKS["cpu"] = _TickClock((ctx.rank + 1) / 64)
    try:
        tb = VAE(epochs=200, time_budget=1.0, budget_clock="cpu", **SMALL, **SIZES)
        tb.fit(x, X_val=xv)
    finally:
        CLOCKS.update(clocks)
    res["budget"] = {"params": _params(tb), "epochs": tb.n_epochs_, "used": tb.time_used_}
    # 4. NaN on rank 1 only (its 8th training call: the DDP probe, then epoch 2's 2nd
    # step): both ranks skip the step and roll back
    est = VAE(epochs=3, on_divergence="rollback", **SMALL, **SIZES)
    pyro.set_rng_seed(est.seed)
    est.check_params()
    est.build(tuple(x.shape[1:]), "bernoulli")
    trainer = est.make_trainer(None, None)
    if ctx.rank == 1:
        trainer.objective = _NaNOnce(trainer.objective, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit_with(trainer, x, xv)
    res["nan"] = {
        "params": _params(est),
        "rollbacks": trainer.rollbacks,
        "lr": [r["lr"] for r in est.history_],
    }
    torch.save(res, out / f"rank{ctx.rank}.pt")
    D.shutdown()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    with pytest.MonkeyPatch.context() as mp:  # for the ranks only; restored at once
        mp.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
        assert D.launch(2, _worker, str(out)) == 0
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    return out, ranks


def _single(cls, x, xv, **kw):
    return cls(**SMALL, **SIZES, **kw).fit(x, X_val=xv)


def _losses(history):
    return [{k: v for k, v in h.items() if "seconds" not in k} for h in history]


def _rel(a, b):
    return abs(a - b) / abs(b)


def test_parameters_identical_on_all_ranks(two_ranks):
    _, (r0, r1) = two_ranks
    assert (r0["rank"], r1["rank"], r0["world"]) == (0, 1, 2)
    for key in ("ae", "vae", "resumed", "mid", "budget", "nan"):
        for p, q in zip(r0[key]["params"], r1[key]["params"], strict=True):
            assert torch.equal(p, q), key


def test_autoencoder_matches_single_process(two_ranks, small_digits):
    """No Monte Carlo draws: the 2-process loss trajectory equals the single-process one up
    to the order of floating-point sums (measured: relative differences below 1e-6)."""
    _, (r0, _) = two_ranks
    x, xv = small_digits
    single = AE(epochs=3, **SMALL, **SIZES).fit(
        x[:AE_ROWS], X_val=xv, train_transform=draw_bernoulli
    )
    for a, b in zip(r0["ae"]["history"], single.history_, strict=True):
        assert _rel(a["train_loss"], b["train_loss"]) < 1e-5
        assert _rel(a["val_loss"], b["val_loss"]) < 1e-5
    for p, q in zip(r0["ae"]["params"], single.module_.parameters(), strict=True):
        torch.testing.assert_close(p, q.detach(), rtol=1e-4, atol=1e-6)


def test_vae_matches_single_process_statistically(two_ranks, small_digits):
    """Each rank draws its own Monte Carlo noise, so a VAE agrees with one process only
    up to that noise (measured: relative differences of a few 1e-4 after 4 epochs)."""
    _, (r0, _) = two_ranks
    x, xv = small_digits
    single = _single(VAE, x, xv, epochs=4)
    first = [r["train_loss"] for r in single.history_]
    for a, b in zip(r0["vae"]["history"], single.history_, strict=True):
        assert _rel(a["train_loss"], b["train_loss"]) < 5e-3
    assert r0["vae"]["history"][-1]["train_loss"] < first[0]  # and it does learn


def test_resume_under_ddp_is_exact(two_ranks):
    """From an epoch-end checkpoint, and from a mid-epoch one (partial sums over ranks)."""
    _, (r0, r1) = two_ranks
    for r in (r0, r1):
        for key in ("resumed", "mid"):
            assert _losses(r["vae"]["history"]) == _losses(r[key]["history"]), key
            for p, q in zip(r["vae"]["params"], r[key]["params"], strict=True):
                assert torch.equal(p, q), key


def test_rank0_writes_the_run(two_ranks):
    out, (r0, _) = two_ranks
    ckpt = load_checkpoint(out / "vae" / "checkpoint.pt")
    state = ckpt["trainer"]
    assert state["world_size"] == 2 and len(state["rng"]["ranks"]) == 2
    assert [h["epoch"] for h in state["history"]] == [1, 2, 3, 4]
    (session,) = json.loads((out / "vae" / "run.json").read_text())["sessions"]
    assert session["world_size"] == 2
    for p, q in zip(r0["vae"]["params"], _best_or_last(ckpt), strict=True):
        assert torch.equal(p, q)


def _best_or_last(ckpt):
    from pyrovae.api import from_checkpoint

    return list(from_checkpoint(ckpt).module_.parameters())


def test_budget_and_divergence_stop_all_ranks_together(two_ranks):
    _, (r0, r1) = two_ranks
    # only rank 1's clock reached the budget; rank 0 stopped with it, at the same step
    assert r1["budget"]["used"] >= 1.0 > r0["budget"]["used"]
    assert 1 <= r0["budget"]["epochs"] == r1["budget"]["epochs"] < 200
    for r in (r0, r1):  # rank 1's NaN made both ranks roll back once
        (rb,) = r["nan"]["rollbacks"]
        assert rb["diverged_at"] == "epoch 2, step 2 of 5"
        assert r["nan"]["lr"] == pytest.approx([1e-3, 5e-4, 5e-4])


def test_scaling_math_on_uneven_batches():
    """W/B per rank (not 1/B_r) makes the averaged gradient the global one when the
    slices differ in size: 7 rows over 3 ranks (3, 2, 2)."""
    torch.manual_seed(0)
    w = torch.randn(4, requires_grad=True)
    xb = torch.randn(7, 4)

    def grad(rows, divisor):
        (g,) = torch.autograd.grad(((rows @ w) ** 2).sum() / divisor, w)
        return g

    full = grad(xb, 7)
    world = 3
    ours = sum(grad(xb[r::world], 7 / world) for r in range(world)) / world
    naive = sum(grad(xb[r::world], len(xb[r::world])) for r in range(world)) / world
    torch.testing.assert_close(ours, full)
    assert not torch.allclose(naive, full)


def test_rank_streams_differ_and_are_stable():
    assert D.rank_seed(0, 1) == D.rank_seed(0, 1) != D.rank_seed(0, 2) != D.rank_seed(1, 1)
    assert 0 <= D.rank_seed(5, 3) < 2**63


def test_the_rendezvous_port_is_held_from_the_start():
    """launch() hosts the rendezvous store on a port bound when it is chosen, so no
    other process can take it before the ranks connect (no free-then-reuse race)."""
    store = D.host_rendezvous_store()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        with pytest.raises(OSError):
            other.bind(("127.0.0.1", store.port))
    store.set("key", "value")  # and it serves
    assert store.get("key") == b"value"


def test_no_process_group_without_torchrun(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert D.init_from_env("cpu") is None and D.current() is None
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    from pyrovae.errors import ConfigError

    with pytest.raises(ConfigError, match="launch with torchrun"):
        D.init_from_env("cpu")


@pytest.mark.slow
def test_cli_nproc_and_torchrun(tmp_path):
    """``pyrovae train --nproc 2`` and the same under torchrun: one summary, rank 0's
    files, the same losses (the same code path)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["--epochs", "2", "--hidden", "16", "--latent-dim", "2", "--no-progress"]
    a = subprocess.run(
        [sys.executable, "-m", "pyrovae.cli", "train", "-o", str(tmp_path / "a"), "--nproc",
         "2", *args],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert a.returncode == 0, a.stderr
    assert json.loads(a.stdout)["epochs"] == 2
    assert a.stderr.count("training vae on digits") == 1 and "(2 processes)" in a.stderr
    b = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
         "2", "-m", "pyrovae.cli", "train", "-o", str(tmp_path / "b"), *args],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert b.returncode == 0, b.stderr
    ha = load_checkpoint(tmp_path / "a" / "checkpoint.pt")["trainer"]["history"]
    hb = load_checkpoint(tmp_path / "b" / "checkpoint.pt")["trainer"]["history"]
    assert [h["train_loss"] for h in ha] == [h["train_loss"] for h in hb]
    bad = subprocess.run(
        [sys.executable, "-m", "pyrovae.cli", "train", "-o", str(tmp_path / "a"), "--nproc",
         "2", *args],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        f"pyrovae: error: run folder {str(tmp_path / 'a')!r} already holds a run; use "
        "--force to write into it or choose another --output"
    ]
