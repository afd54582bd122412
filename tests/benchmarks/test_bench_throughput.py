"""The training-throughput benchmark: it runs, writes its record, and compares like with like.

The benchmark script is loaded from its file path (``benchmarks/`` is not a
package). The equivalence tests check that the hand-written reference VAE and
pyrovae's Trace_ELBO step compute the same loss and the same gradients from
the same weights and the same noise, so the timing compares equal work.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_throughput.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_throughput", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_throughput", module)
    spec.loader.exec_module(module)
    return module


def _positive_finite(v) -> bool:
    return isinstance(v, float) and math.isfinite(v) and v > 0


def test_tiny_run_writes_json_and_markdown(bench, tmp_path):
    threads = torch.get_num_threads()
    try:
        record = bench.main(
            [
                "--batch-sizes", "16,8",
                "--rounds", "2",
                "--steps", "3",
                "--warmup", "1",
                "--threads", "1",
                "--out", str(tmp_path),
            ]
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    on_disk = json.loads((tmp_path / "throughput.json").read_text())
    assert on_disk == json.loads(json.dumps(record))
    assert on_disk["config"]["batch_sizes"] == [16, 8]
    assert on_disk["machine"]["torch_threads"] == 1
    assert on_disk["machine"]["cpu_count"] >= 1
    for key in ("platform", "torch", "pyro"):
        assert on_disk["machine"][key]
    assert [r["batch_size"] for r in on_disk["results"]] == [16, 8]
    for r in on_disk["results"]:
        for key in ("pyrovae_samples_per_s", "reference_samples_per_s", "ratio"):
            s = r[key]
            assert all(_positive_finite(s[k]) for k in ("median", "min", "max"))
            assert s["min"] <= s["median"] <= s["max"]
        assert len(r["rounds"]["ratio"]) == 2
        assert all(_positive_finite(v) for v in r["rounds"]["ratio"])
        assert r["loss_check"]["relative_difference"] < 1e-5
    md = (tmp_path / "throughput.md").read_text()
    assert "| batch | pyrovae samples/s | reference samples/s | median ratio |" in md
    assert "\n| 16 |" in md and "\n| 8 |" in md


def test_bad_arguments_are_rejected(bench):
    with pytest.raises(SystemExit):
        bench.parse_args(["--rounds", "0"])
    with pytest.raises(ValueError):
        bench.parse_args(["--batch-sizes", "64,-1"])


def test_reference_copies_pyrovae_weights(bench):
    module, reference, _, _, _ = bench.build_pair(seed=3)
    assert sum(p.numel() for p in module.parameters()) == sum(
        p.numel() for p in reference.parameters()
    )
    torch.testing.assert_close(reference.enc_out.weight, module.guide_head.linear.weight)
    torch.testing.assert_close(reference.dec_out.bias, module.decoder.net[2].bias)


def test_same_loss_and_gradients_from_same_noise(bench):
    """One pyrovae objective evaluation and one reference forward agree, value and gradient."""
    module, reference, objective, _, _ = bench.build_pair(seed=1)
    x = bench.synthetic_binary(32, seed=2)
    torch.manual_seed(7)
    ours = objective(module.model, module.guide, x)
    torch.manual_seed(7)
    theirs, recon, kl = reference(x)
    torch.testing.assert_close(ours.loss, theirs)
    torch.testing.assert_close(ours.recon, recon)
    torch.testing.assert_close(ours.kl, kl)

    (ours.loss / 32).backward()
    (theirs / 32).backward()
    pairs = [
        (module.encoder.net[0], reference.enc_hidden),
        (module.guide_head.linear, reference.enc_out),
        (module.decoder.net[0], reference.dec_hidden),
        (module.decoder.net[2], reference.dec_out),
    ]
    for a, b in pairs:
        torch.testing.assert_close(a.weight.grad, b.weight.grad, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(a.bias.grad, b.bias.grad, rtol=1e-4, atol=1e-6)


def test_explicit_noise_matches_the_seeded_draw(bench):
    """``eps`` given explicitly reproduces the draw Pyro's Normal.rsample makes."""
    _, reference, _, _, _ = bench.build_pair(seed=0)
    x = bench.synthetic_binary(8, seed=0)
    torch.manual_seed(11)
    seeded = reference(x)[0]
    torch.manual_seed(11)
    eps = torch.randn(8, 50)
    torch.testing.assert_close(reference(x, eps)[0], seeded)


def test_training_trajectories_agree(bench):
    """A few Adam steps from the same start on the same batches stay together."""
    from pyrovae.training.step import train_step

    module, reference, objective, opt_p, opt_r = bench.build_pair(seed=0)
    batches = bench.synthetic_binary(64, seed=5).split(16)
    for i, xb in enumerate(batches):
        torch.manual_seed(100 + i)
        lp = train_step(module, objective, opt_p, xb).loss
        torch.manual_seed(100 + i)
        lr = bench.reference_step(reference, opt_r, xb)
        torch.testing.assert_close(lp.detach(), lr.detach(), rtol=1e-4, atol=1e-3)
    # The two compute the Bernoulli term with different (equal up to rounding) formulas;
    # Adam normalises gradients, so a weight whose gradient is ~0 can move by up to lr
    # per step either way. Hence: almost all weights agree to 1e-5, none beyond 4 steps x lr.
    diff = (module.decoder.net[2].weight - reference.dec_out.weight).abs()
    assert (diff > 1e-5).float().mean() < 1e-3
    assert diff.max() <= 4 * 1e-3 + 1e-6


def test_binarized_mnist_reader(bench, tmp_path):
    load_binarized_mnist = bench.load_binarized_mnist
    rows = ["0 1 " * 392, "1 1 " * 392, "0 0 " * 392]
    (tmp_path / "binarized_mnist_train.amat").write_text("\n".join(r.strip() for r in rows))
    x = load_binarized_mnist(tmp_path, max_rows=2)
    assert x.shape == (2, 784) and x.dtype == torch.float32
    assert x[0, :4].tolist() == [0.0, 1.0, 0.0, 1.0] and bool((x[1] == 1).all())
    (tmp_path / "bad.amat").write_text("0 1 2\n")
    with pytest.raises(ValueError):
        load_binarized_mnist(tmp_path / "bad.amat")
    with pytest.raises(FileNotFoundError):
        load_binarized_mnist(tmp_path / "missing")
