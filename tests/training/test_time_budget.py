"""Time budgets (wall or CPU clock, carried across resumes) and run provenance (run.json).

Budgets are counted on :class:`~conftest.FakeClock` clocks (the ``fake_clock``
fixture), one "second" per read, so what a budget buys does not depend on the
machine's speed."""

from __future__ import annotations

import json
import time

import pytest
import torch

from pyrovae.api import VAE, resume
from pyrovae.config import coerce
from pyrovae.errors import ConfigError
from pyrovae.training import load_checkpoint
from pyrovae.training.trainer import CLOCKS

SMALL = dict(hidden=(32,), latent_dim=2, batch_size=64, epochs=50, patience=0)


def test_budget_stops_training_mid_epoch(small_digits, tmp_path, fake_clock):
    x, xv = small_digits  # 5 minibatches of 64 per epoch
    vae = VAE(time_budget=12, **SMALL).fit(x, X_val=xv, run_dir=tmp_path)
    assert vae.budget_spent_
    # the clock is read at the start, after every step and at every checkpoint, so
    # 12 "seconds" end the run early in its third epoch; that epoch is not counted
    assert vae.n_epochs_ == 2 < SMALL["epochs"]
    assert 12 <= vae.time_used_ <= 16
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["trainer"]["epoch"] == 2 and 0 < ckpt["trainer"]["partial_epoch"]["batch"] < 5
    assert ckpt["trainer"]["time_used"] == pytest.approx(vae.time_used_)
    assert ckpt["trainer"]["budget_clock"] == "wall"
    assert all(torch.isfinite(v).all() for v in ckpt["module"].values())


def test_resume_spends_what_is_left(small_digits, tmp_path, fake_clock):
    x, xv = small_digits
    VAE(time_budget=6, **SMALL).fit(x, X_val=xv, run_dir=tmp_path)
    with pytest.raises(ConfigError, match="spent its time budget"):
        resume(tmp_path, x, xv)
    with pytest.raises(ConfigError, match="larger total --time-budget"):
        resume(tmp_path, x, xv, time_budget=3)
    est = resume(tmp_path, x, xv, time_budget=20)
    assert est.budget_spent_ and 20 <= est.time_used_ <= 24
    # 6 ticks end the first session inside epoch 2 (1 epoch counted); 20 reach epoch 4
    assert 3 <= est.n_epochs_ < SMALL["epochs"]
    sessions = json.loads((tmp_path / "run.json").read_text())["sessions"]
    assert [s["from_epoch"] for s in sessions] == [0, 1]
    # each read of the fake clock costs a "second"; the stop reads it a few more times
    assert sessions[0]["time_used"] == 0 and 6 <= sessions[1]["time_used"] <= 12


def test_the_clocks_are_the_process_clocks():
    assert CLOCKS == {"wall": time.perf_counter, "cpu": time.process_time}


def test_cpu_clock_budget_reads_only_the_cpu_clock(small_digits, fake_clock):
    x, xv = small_digits  # 5 minibatches of 64 per epoch
    vae = VAE(time_budget=12, budget_clock="cpu", **{**SMALL, "epochs": 100_000}).fit(x, X_val=xv)
    # a start read, then one per step: the 12th step (in the third epoch, which is not
    # counted) reaches 12 "seconds"; stopping reads the clock once more
    assert vae.budget_spent_ and vae.n_epochs_ == 2
    assert fake_clock.wall.reads == 0 and 12 <= vae.time_used_ <= 14


def test_run_json_records_code_and_machine(small_digits, tmp_path):
    x, xv = small_digits
    VAE(**{**SMALL, "epochs": 1}).fit(x, X_val=xv, run_dir=tmp_path)
    (session,) = json.loads((tmp_path / "run.json").read_text())["sessions"]
    assert session["code"]["pyrovae"]
    assert session["machine"]["torch"] == torch.__version__
    assert session["machine"]["cpu_count"] >= 1 and session["machine"]["torch_threads"] >= 1


@pytest.mark.parametrize(
    "text, seconds", [(600, 600.0), ("90s", 90.0), ("10m", 600.0), ("1.5h", 5400.0), ("2", 2.0)]
)
def test_duration_parsing(text, seconds):
    assert coerce("time_budget", text) == seconds


@pytest.mark.parametrize("bad", ["ten minutes", "-5m", "0", True, "5 parsecs"])
def test_bad_duration_is_one_line(bad):
    with pytest.raises(ConfigError, match="time_budget") as err:
        coerce("time_budget", bad)
    assert "\n" not in str(err.value)


def test_bad_budget_in_api(small_digits):
    x, _ = small_digits
    with pytest.raises(ConfigError, match="time_budget must be a positive"):
        VAE(time_budget=-1, **SMALL).fit(x)
    with pytest.raises(ConfigError, match="budget_clock must be one of"):
        VAE(budget_clock="sundial", **SMALL).fit(x)


def test_a_run_stopped_by_its_budget_continues_bit_exactly(small_digits, tmp_path, fake_clock):
    # the budget stops the run inside its third epoch; continuing it with a larger
    # budget trains exactly the run an uninterrupted fit trains (benchmarks/bench_nll.py
    # relies on this when a larger budget starts from a smaller one's checkpoint)
    x, xv = small_digits
    params = {**SMALL, "epochs": 6, "seed": 3}
    first = VAE(time_budget=12, **params).fit(x, X_val=xv, run_dir=tmp_path / "a")
    assert first.budget_spent_ and first.n_epochs_ == 2
    continued = resume(tmp_path / "a", x, xv, time_budget=10_000)
    whole = VAE(**params).fit(x, X_val=xv, run_dir=tmp_path / "b")
    assert continued.n_epochs_ == whole.n_epochs_ == 6
    for (name, a), b in zip(
        continued.module_.state_dict().items(), whole.module_.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
