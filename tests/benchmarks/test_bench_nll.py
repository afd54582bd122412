"""Smoke test of the budgeted NLL benchmark on tiny settings (digits, seconds of CPU).

The benchmark counts its budgets on the trainer's CPU clock; here that clock is a
:class:`~conftest.FakeClock` that advances :data:`TICK` seconds per read (about one
read per optimizer step), so what a budget trains does not depend on the machine's
speed. The digits give 1,310 training rows after the early-stopping rows: 14 steps of
100 per epoch.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_nll.py"

#: Fake CPU-seconds per read of the budget clock (a binary fraction, so sums are exact):
#: 0.01 minutes on 2 cores (1.2 s) are 154 reads, about 10 epochs.
TICK = 2.0**-7


@pytest.fixture(autouse=True)
def _budget_clock(fake_clock):
    fake_clock.cpu.tick = TICK
    return fake_clock.cpu


def _module():
    spec = importlib.util.spec_from_file_location("bench_nll", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tiny_run_writes_outputs_and_resumes(tmp_path, monkeypatch):
    import torch

    mod = _module()
    argv = [
        "--budgets", "0.01",
        "--configs", "vae", "ae",
        "--samples", "20",
        "--hidden", "16",
        "--latent-dim", "2",
        "--runs", str(tmp_path / "runs"),
        "--out", str(tmp_path),
        "--eval-threads", "2",
    ]  # fmt: skip
    calls = []
    set_threads, before = torch.set_num_threads, torch.get_num_threads()
    set_threads(3)  # the caller's setting
    monkeypatch.setattr(torch, "set_num_threads", lambda n: calls.append(n) or set_threads(n))
    try:
        result = mod.main(argv)
        after = torch.get_num_threads()
    finally:
        set_threads(before)
    # training on --threads 1, each evaluation on 2 then back to 1, and the caller's 3
    # restored at the end
    assert calls == [1, 2, 1, 2, 1, 3] and after == 3
    vae, ae = result["results"]
    # 0.01 min on 2 cores = 1.2 CPU-seconds, spent, and exceeded only by the reads that
    # stop the run (the mid-epoch checkpoint and the end)
    assert vae["budget_cpu_seconds"] == 1.2
    assert 1.2 <= vae["cpu_seconds_used"] <= 1.2 + 3 * TICK
    assert math.isfinite(vae["nll"]) and vae["nll"] > 0 and vae["nll_se"] > 0
    # importance sampling tightens the bound: -log p(x) <= -ELBO up to Monte Carlo noise,
    # the standard error of the paired per-point difference (the ELBO's draws replayed)
    from pyrovae.api import load
    from pyrovae.inference.loglik import elbo_terms

    val = mod.load(mod.parse_args(argv))[2]
    module = load(tmp_path / "runs" / "vae-0.01min").module_
    torch.manual_seed(0)  # --seed, set before the scores
    recon, kl = elbo_terms(module, val)
    assert float((recon - kl).mean()) == pytest.approx(vae["elbo"], rel=1e-5)
    ll = torch.from_numpy(np.load(tmp_path / "runs" / "vae-0.01min" / "loglik_val_K20.npy"))
    assert float(ll.mean()) == pytest.approx(-vae["nll"], rel=1e-6)
    diff = ll.float() - (recon - kl)
    assert diff.mean() >= -3 * diff.std() / math.sqrt(diff.numel())
    assert "nll" not in ae and ae["recon_nats"] > 0 and ae["mse"] > 0
    run = tmp_path / "runs" / "vae-0.01min"
    sessions = json.loads((run / "run.json").read_text())["sessions"]
    assert sessions[0]["machine"]["cpu_count"] >= 1 and "code" in sessions[0]
    saved = json.loads((tmp_path / "nll.json").read_text())
    assert [r["config"] for r in saved["results"]] == ["vae", "ae"]
    assert "| vae | 0.01 |" in (tmp_path / "nll.md").read_text()
    # a second invocation reuses finished runs instead of training again
    (run / "result.json").write_text(json.dumps({**vae, "nll": 123.0}))
    again = mod.main(argv)
    assert again["results"][0]["nll"] == 123.0


def test_a_run_held_by_a_live_process_is_skipped(tmp_path):
    import os

    mod = _module()
    folder = tmp_path / "runs" / "vae-0.01min"
    folder.mkdir(parents=True)
    (folder / "lock").write_text(str(os.getppid()))  # alive: the test runner's parent
    argv = ["--budgets", "0.01", "--configs", "vae", "--runs", str(tmp_path / "runs")]
    assert mod.main(argv)["results"] == []
    (folder / "lock").write_text("999999999")  # no such process: the lock is stale
    assert mod._lock(folder) and (folder / "lock").read_text() == str(os.getpid())


def test_report_only_tabulates_finished_runs_and_trains_nothing(tmp_path):
    mod = _module()
    runs = tmp_path / "runs"
    done = runs / "vae-10min"
    done.mkdir(parents=True)
    row = {
        "config": "vae", "budget_minutes": 10, "nll": 90.0, "nll_se": 0.3, "elbo": -95.0,
        "kl": 25.0, "recon_nats": 70.0, "mse": 9.0, "epochs": 100, "cpu_seconds_used": 1200.0,
        "samples": 5000,
    }  # fmt: skip
    (done / "result.json").write_text(json.dumps(row))
    argv = ["--budgets", "10", "--configs", "vae", "mog", "--runs", str(runs), "--report-only"]
    result = mod.main([*argv, "--out", str(tmp_path)])
    assert [r["config"] for r in result["results"]] == ["vae"]
    assert not (runs / "mog-10min").exists()
    assert "| vae | 10 | 90.00 | 0.30 | 95.00 |" in (tmp_path / "nll.md").read_text()


def test_log_likelihood_resumes_block_by_block(tmp_path, monkeypatch):
    import numpy as np
    import torch

    from pyrovae.api import VAE

    mod = _module()
    monkeypatch.setattr(mod, "EVAL_BLOCK", 7)
    x = (torch.rand(20, 12, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    vae = VAE(hidden=(8,), latent_dim=2, epochs=2, likelihood="bernoulli").fit(x)
    whole = mod.resumable_log_likelihood(vae.module_, x, 30, tmp_path / "a.npy", seed=3)
    # an evaluation cut short after the first block continues to the same values
    np.save(tmp_path / "b.npy", np.load(tmp_path / "a.npy")[:7])
    resumed = mod.resumable_log_likelihood(vae.module_, x, 30, tmp_path / "b.npy", seed=3)
    assert whole.shape == (20,) and torch.equal(whole, resumed)
    assert np.load(tmp_path / "b.npy").shape == (20,)


def _row(config, minutes, **kw):
    row = {
        "config": config, "budget_minutes": minutes, "budget_cpu_seconds": 120.0 * minutes,
        "nll": 90.0, "nll_se": 0.3, "elbo": -95.0, "kl": 25.0, "recon_nats": 70.0, "mse": 9.0,
        "epochs": 160, "best_epoch": 110, "cpu_seconds_used": 700.0, "samples": 5000,
    }  # fmt: skip
    return {**row, **kw}


def test_an_early_stopped_run_stands_for_larger_budgets(tmp_path):
    mod = _module()
    runs = tmp_path / "runs"
    for config, row in [
        ("vae", _row("vae", 10)),  # early stopping (50 epochs past the best) at 700 of 1200 s
        ("mog", _row("mog", 10, cpu_seconds_used=1200.0)),  # the budget ended it
        ("vamp", _row("vamp", 10, best_epoch=150)),  # stopped for another reason
    ]:
        (runs / f"{config}-10min").mkdir(parents=True)
        (runs / f"{config}-10min" / "result.json").write_text(json.dumps(row))
    argv = ["--budgets", "10", "60", "--configs", "vae", "mog", "vamp", "--runs", str(runs)]
    result = mod.main([*argv, "--report-only", "--out", str(tmp_path)])
    rows = {(r["config"], r["budget_minutes"]): r for r in result["results"]}
    assert set(rows) == {("vae", 10), ("mog", 10), ("vamp", 10), ("vae", 60)}
    assert rows["vae", 60]["same_run_as"] == "vae-10min"
    assert rows["vae", 60]["nll"] == 90.0 and rows["vae", 60]["budget_cpu_seconds"] == 7200.0
    table = (tmp_path / "nll.md").read_text()
    assert "| vae | 60 | 90.00 |" in table and "160 ‡" in table and "‡ early stopping" in table
    assert not (runs / "vae-60min").exists()


def test_a_larger_budget_continues_the_smaller_run(tmp_path):
    mod = _module()
    runs = tmp_path / "runs"
    common = ["--configs", "vae", "--samples", "5", "--hidden", "8", "--latent-dim", "2"]
    short = mod.main(["--budgets", "0.01", *common, "--runs", str(runs)])["results"][0]
    longer = mod.main(["--budgets", "0.03", *common, "--runs", str(runs)])["results"][0]
    assert "same_run_as" not in longer
    assert longer["cpu_seconds_used"] >= 3.6 > short["cpu_seconds_used"]
    assert longer["epochs"] > short["epochs"]
    first = (runs / "vae-0.01min" / "metrics.csv").read_text()
    assert (runs / "vae-0.03min" / "metrics.csv").read_text().startswith(first)
    sessions = json.loads((runs / "vae-0.03min" / "run.json").read_text())["sessions"]
    assert len(sessions) == 2  # the smaller run's session, then the continuation


def test_checkpoints_without_exact_resume_are_not_continued(tmp_path):
    import torch

    from pyrovae.training import load_checkpoint, save_checkpoint

    mod = _module()
    runs = tmp_path / "runs"
    common = ["--configs", "vae", "--samples", "5", "--hidden", "8", "--latent-dim", "2"]
    mod.main(["--budgets", "0.01", *common, "--runs", str(runs)])
    path = runs / "vae-0.01min" / "checkpoint.pt"
    ckpt = load_checkpoint(path)
    del ckpt["trainer"]["resume_exact"]  # as written by an older pyrovae
    save_checkpoint(path, ckpt)
    assert torch.load(path, weights_only=True)["trainer"].get("resume_exact") is None
    mod.main(["--budgets", "0.02", *common, "--runs", str(runs)])
    sessions = json.loads((runs / "vae-0.02min" / "run.json").read_text())["sessions"]
    assert len(sessions) == 1 and sessions[0]["from_epoch"] == 0  # trained afresh


def test_a_run_whose_budget_is_spent_is_scored_without_training(tmp_path):
    mod = _module()
    runs = tmp_path / "runs"
    argv = ["--budgets", "0.01", "--configs", "vae", "--samples", "5", "--hidden", "8",
            "--latent-dim", "2", "--runs", str(runs)]  # fmt: skip
    first = mod.main(argv)["results"][0]
    (runs / "vae-0.01min" / "result.json").unlink()  # e.g. cut short while scoring
    again = mod.main(argv)["results"][0]
    assert again["epochs"] == first["epochs"]
    assert again["cpu_seconds_used"] == first["cpu_seconds_used"]
    sessions = json.loads((runs / "vae-0.01min" / "run.json").read_text())["sessions"]
    assert len(sessions) == 1  # no second training session


def test_every_configuration_trains_and_scores_on_tiny_settings(tmp_path):
    mod = _module()
    argv = [
        "--budgets", "0.002",
        "--configs", *mod.CONFIGS,
        "--samples", "5",
        "--hidden", "8",
        "--latent-dim", "2",
        "--runs", str(tmp_path / "runs"),
    ]  # fmt: skip
    result = mod.main(argv)
    rows = {r["config"]: r for r in result["results"]}
    assert set(rows) == set(mod.CONFIGS)
    for name, row in rows.items():
        # 0.24 CPU-seconds are 31 reads of the fake clock: one epoch of 14 steps, and
        # the budget ends the second
        assert row["epochs"] >= 1 and math.isfinite(row["recon_nats"]), name
        assert row["budget_cpu_seconds"] <= row["cpu_seconds_used"], name
        assert ("nll" in row) == (mod.CONFIGS[name]["model"] not in ("ae", "dae")), name
