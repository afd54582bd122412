"""Smoke test of the image-completion benchmark on tiny settings, and the protocol's masks."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_completion.py"


def load():
    spec = importlib.util.spec_from_file_location("bench_completion", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quadrant_masks_follow_pyros_cvae_protocol():
    mod = load()
    m1, m2, m3 = (mod.quadrant_mask(8, k) for k in (1, 2, 3))
    assert [int(m.sum()) for m in (m1, m2, m3)] == [16, 32, 48]
    assert m1[4:, :4].all() and not m1[:4].any() and not m1[:, 4:].any()  # bottom-left
    assert m2[:, :4].all() and not m2[:, 4:].any()  # the left half
    assert not m3[4:, 4:].any() and (m3.sum() == 48)  # all but the bottom-right
    assert (m1 <= m2).all() and (m2 <= m3).all()


def test_tiny_run_writes_outputs(tmp_path):
    mod = load()
    argv = (
        "--images 1 --epochs 1 --hidden 8 --latent-dim 2 --draws 10 --k 10 --svi-steps 2 "
        f"--warmup 3 --out {tmp_path}"
    ).split()
    result = mod.main(argv)
    saved = json.loads((tmp_path / "completion.json").read_text())
    assert {(r["observed"], r["method"]) for r in saved["rows"]} == {
        (k, m) for k in (1, 2, 3) for m in ("guide", "svi", "nuts")
    }
    assert all(
        math.isfinite(r["nll_predictive"]) and r["nll_predictive"] > 0 for r in saved["rows"]
    )
    assert [r["observed"] for r in saved["nll_is"]] == [1, 2, 3]
    assert len(result["summary"]) == 9
    assert "| 3 | nuts | 1 |" in (tmp_path / "completion.md").read_text()


def test_predictive_nll_of_a_known_decoder():
    """One draw of z: -log p(x_miss | z) summed over the missing pixels only."""
    mod = load()

    class Est:
        class module_:  # noqa: N801
            @staticmethod
            def decode(z):
                from pyrovae.likelihoods.bernoulli import BernoulliLikelihood

                return BernoulliLikelihood((4,))(torch.zeros(z.shape[0], 1, 4))  # p = 0.5

    x = torch.tensor([1.0, 0.0, 1.0, 1.0])
    mask = torch.tensor([True, False, False, True])
    got = mod.predictive_nll(Est, torch.zeros(3, 2), x, mask)
    assert math.isclose(got, 2 * math.log(2), rel_tol=1e-6)
