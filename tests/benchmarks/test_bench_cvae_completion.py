"""The image-completion benchmark: Pyro's quadrant masks, and a tiny run end to end."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_cvae_completion.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_cvae_completion", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_cvae_completion", module)
    spec.loader.exec_module(module)
    return module


def test_quadrant_masks_are_pyros(bench):
    """1: the bottom-left quadrant; 2: the left half; 3: all but the bottom right."""
    one, two, three = (bench.observed_mask(4, q).int() for q in (1, 2, 3))
    assert one.tolist() == [[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0]]
    assert two.tolist() == [[1, 1, 0, 0]] * 4
    assert three.tolist() == [[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 0, 0]]
    x = torch.arange(32.0).reshape(2, 4, 4)
    missing, observed = bench.split_pixels(x, bench.observed_mask(4, 3))
    assert missing.tolist() == [[10, 11, 14, 15], [26, 27, 30, 31]]
    assert observed.shape == (2, 12)
    with pytest.raises(ValueError):
        bench.observed_mask(4, 4)


def test_tiny_run_writes_outputs(bench, tmp_path):
    bench.main(
        ["--epochs", "1", "--samples", "5", "--particles", "2", "--quadrants", "3"]
        + ["--hidden", "8", "--latent-dim", "2", "--eval-rows", "10", "--out", str(tmp_path)]
    )
    record = json.loads((tmp_path / "cvae_completion_digits.json").read_text())
    (row,) = record["results"]
    assert row["quadrants"] == 3 and row["missing_pixels"] == 16
    for key in ("cvae_nll", "cvae_neg_elbo", "baseline_nll", "vae_guide_nll"):
        assert torch.isfinite(torch.tensor(row[key])), key
    # -log p of 16 binary pixels is positive; the s.e. is over the 10 images
    assert 0 < row["cvae_nll"] and record["n_eval"] == 10
    assert "| 3 | 16 |" in (tmp_path / "cvae_completion_digits.md").read_text()
