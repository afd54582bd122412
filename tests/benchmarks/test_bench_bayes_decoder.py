"""Smoke test of the Bayesian-decoder benchmark on tiny settings: it writes one JSON per
setting, skips settings already written (resumable) and summarizes them."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import torch

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_bayes_decoder.py"


def _module():
    spec = importlib.util.spec_from_file_location("bench_bayes_decoder", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


TINY = [
    "--sizes", "40", "--seeds", "0", "--hidden", "8", "--latent-dim", "2", "--steps", "4",
    "--samples", "3", "--weight-draws", "2", "--split-draws", "2", "--rounds", "1",
    "--throughput-epochs", "1",
]  # fmt: skip


def test_tiny_run_writes_outputs_and_resumes(tmp_path):
    mod = _module()
    assert mod.main([*TINY, "--out", str(tmp_path)]) == 0
    fits = sorted(p.name for p in tmp_path.glob("fit_*.json"))
    assert fits == ["fit_all_n40_s0.json", "fit_last_n40_s0.json", "fit_point_n40_s0.json"]
    rec = json.loads((tmp_path / "fit_all_n40_s0.json").read_text())
    assert rec["n"] == 40 and rec["nll"] > 0 and rec["weight_kl"] > 0
    assert set(rec["ood"]) == {"inverted", "flipped"} and "epistemic" in rec["ood"]["flipped"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary["rows"]) == 3 and set(summary["throughput"]["median_ratio_to_point"]) == {
        "point",
        "all",
        "last",
    }
    assert "| 40 | last | 1 |" in (tmp_path / "summary.md").read_text()
    before = (tmp_path / "fit_all_n40_s0.json").stat().st_mtime_ns
    assert mod.main([*TINY, "--out", str(tmp_path)]) == 0
    assert (tmp_path / "fit_all_n40_s0.json").stat().st_mtime_ns == before


def test_shapes_at_the_digits_resolution_are_the_pooled_thresholded_grid():
    from pyrovae.data.shapes import make_shapes

    mod = _module()
    x = mod.shapes_as_digits()
    assert x.shape == (1800, 1, 8, 8)
    full, _ = make_shapes()
    i = 1234
    block = full[i].reshape(32, 32).reshape(8, 4, 8, 4).mean((1, 3))
    assert (x[i, 0] == (block > 0.5).float()).all()


def test_shuffled_columns_keep_each_column_and_break_the_rows():
    mod = _module()
    x = torch.arange(200.0).reshape(50, 4)
    y = mod.shuffle_columns(x, seed=0)
    for j in range(4):
        assert torch.equal(y[:, j].sort().values, x[:, j])
    assert not torch.equal(y, x)


def _amat(path: Path, rows: int) -> None:
    bits = np.random.default_rng(rows).integers(0, 2, size=(rows, 784))
    path.write_text("\n".join(" ".join(map(str, r)) for r in bits) + "\n")


def test_shift_and_mnist_suites_write_outputs_and_resume(tmp_path):
    mod = _module()
    data = tmp_path / "mnist"
    data.mkdir()
    _amat(data / "binarized_mnist_train.amat", mod.MNIST_STOP[1])
    _amat(data / "binarized_mnist_valid.amat", 20)
    out = tmp_path / "out"
    args = [*TINY, "--out", str(out), "--variants", "point", "last"]
    assert mod.main([*args, "--suite", "shift"]) == 0
    rec = json.loads((out / "tabular_last_s0.json").read_text())
    assert rec["n_in"] == rec["n_out"] and set(rec["auroc"]) == {"nll", "epistemic"}
    rec = json.loads((out / "shift_point_s0.json").read_text())
    assert rec["n_out"] == rec["max_pooled"]["n_out"] == 1800 and set(rec["auroc"]) == {"nll"}
    assert (
        "| breast cancer, columns shuffled | last | 1 |" in (out / "summary_shift.md").read_text()
    )
    mnist = [*args, "--suite", "mnist", "--mnist-dir", str(data), "--mnist-val", "20"]
    assert mod.main(mnist) == 0
    rec = json.loads((out / "mnist_last_n40_s0.json").read_text())
    assert rec["n"] == 40 and rec["n_val"] == 20 and rec["nll"] > 0 and rec["weight_kl"] > 0
    assert "| 40 | point | 1 |" in (out / "summary_mnist.md").read_text()
    before = (out / "mnist_last_n40_s0.json").stat().st_mtime_ns
    assert mod.main(mnist) == 0
    assert (out / "mnist_last_n40_s0.json").stat().st_mtime_ns == before


def test_weight_kl_factor_scales_the_weight_sites_alone():
    from pyro import poutine

    from pyrovae import sites
    from pyrovae.api import VAE

    mod = _module()
    train, _, _ = mod.data()
    est = VAE(bayesian_decoder=True, epochs=1, hidden=(8,), latent_dim=2).fit(train[:32])
    x = est.as_input(train[:32])
    prefix = sites.decoder_weight("")
    for factor, want in ((None, 1.0), (0.1, 0.1)):
        with mod.weight_kl_factor(factor):
            guide = poutine.trace(est.module_.guide).get_trace(x)
            model = poutine.trace(poutine.replay(est.module_.model, trace=guide)).get_trace(x)
        for trace in (guide, model):
            scales = {n: float(s["scale"]) for n, s in trace.nodes.items() if s["type"] == "sample"}
            weights = {n: v for n, v in scales.items() if n.startswith(prefix)}
            assert len(weights) == 4 and set(weights.values()) == {want}
            assert {v for n, v in scales.items() if n not in weights} == {1.0}
