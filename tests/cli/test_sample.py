"""`pyrovae sample RUN`: prior samples as a PNG grid and ``.npy``."""

from __future__ import annotations

import numpy as np


def test_sample(run_copy, capsys, run_cli, strict_json, assert_png):
    paths = strict_json(run_cli(capsys, ["sample", run_copy, "-n", "9"]))
    assert paths == {"png": str(run_copy / "samples-9.png"), "npy": str(run_copy / "samples-9.npy")}
    assert_png(run_copy / "samples-9.png")
    samples = np.load(run_copy / "samples-9.npy")
    assert samples.shape == (9, 1, 8, 8) and samples.min() >= 0 and samples.max() <= 1


def test_sample_seed_and_output(run_copy, tmp_path, capsys, run_cli, assert_png):
    a, b, c = (tmp_path / "out" / name for name in ("a.png", "b.png", "c"))
    run_cli(capsys, ["sample", run_copy, "-n", "5", "--seed", "1", "--output", a, "--draw"])
    run_cli(capsys, ["sample", run_copy, "-n", "5", "--seed", "1", "--output", b, "--draw"])
    run_cli(capsys, ["sample", run_copy, "-n", "5", "--seed", "2", "--output", c, "--draw"])
    xa, xb = np.load(a.with_suffix(".npy")), np.load(b.with_suffix(".npy"))
    xc = np.load(tmp_path / "out" / "c.npy")
    assert np.array_equal(xa, xb) and not np.array_equal(xa, xc)
    assert set(np.unique(xa)) <= {0.0, 1.0}  # --draw: Bernoulli draws, not means
    assert_png(a)
    assert_png(tmp_path / "out" / "c.png")
