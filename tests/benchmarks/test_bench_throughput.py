"""The training-throughput benchmark: it runs, writes its record, and compares like with like.

The benchmark script is loaded from its file path (``benchmarks/`` is not a
package). That the hand-written reference VAE and pyrovae's Trace_ELBO step compute
the same loss and the same gradients from the same weights and the same noise (so
that the timing compares equal work) is checked next to the library code, in
``tests/objectives/test_reference_vae.py`` and ``tests/training/test_step.py``; here,
that the benchmark times the trainer's own step.
"""

from __future__ import annotations

import json
import math

import pytest
import torch


@pytest.fixture
def bench(bench_throughput):
    return bench_throughput


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


def test_explicit_noise_matches_the_seeded_draw(bench):
    """``eps`` given explicitly reproduces the draw Pyro's Normal.rsample makes."""
    _, reference, _, _, _ = bench.build_pair(seed=0)
    x = bench.synthetic_binary(8, seed=0)
    torch.manual_seed(11)
    seeded = reference(x)[0]
    torch.manual_seed(11)
    eps = torch.randn(8, 50)
    torch.testing.assert_close(reference(x, eps)[0], seeded)


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


def test_the_benchmark_times_the_trainers_step(bench, monkeypatch):
    """pyrovae's sides of every round (its default route, and always the traces) are
    calls of train_step, the trainer's own step."""
    calls = {True: [], False: []}
    real = bench.train_step

    def spy(*args, **kwargs):
        calls[args[1].direct].append(len(args[3]))
        return real(*args, **kwargs)

    monkeypatch.setattr(bench, "train_step", spy)
    data = bench.synthetic_binary(32, seed=0)
    result = bench.bench_batch_size(data, 8, rounds=2, steps=3, warmup=1)
    assert calls[True] == calls[False] == [8] * (1 + 2 * 3)
    assert result["route"] == "direct"
