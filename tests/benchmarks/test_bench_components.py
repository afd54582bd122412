"""Smoke test of the per-component throughput benchmark on tiny settings."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_components.py"


def _module():
    spec = importlib.util.spec_from_file_location("bench_components", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_registered_component_is_a_case():
    from pyrovae.likelihoods import LIKELIHOODS
    from pyrovae.priors import PRIORS

    labels = [_module().label(c) for c in _module().cases(3)]
    assert all(f"prior={p}" in labels for p in PRIORS.names() if p != "normal")
    assert all(f"likelihood={n}" in labels for n in LIKELIHOODS.names() if n != "bernoulli")


def test_tiny_run_writes_outputs(tmp_path):
    mod = _module()
    mod.main(
        [
            "--batch-size",
            "8",
            "--latent-dim",
            "2",
            "--hidden",
            "8",
            "--rounds",
            "1",
            "--steps",
            "1",
            "--warmup",
            "1",
            "--only",
            "prior=learned",
            "likelihood=beta",
            "--out",
            str(tmp_path),
        ]
    )
    saved = json.loads((tmp_path / "components.json").read_text())
    assert [r["case"] for r in saved["results"]] == ["prior=learned", "likelihood=beta"]
    assert all(
        math.isfinite(r["ratio"]["median"]) and r["ratio"]["median"] > 0 for r in saved["results"]
    )
    assert "prior=learned" in (tmp_path / "components.md").read_text()
