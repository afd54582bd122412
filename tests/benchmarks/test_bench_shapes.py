"""Smoke test of the shapes-rendering benchmark (the render time is measured there, not
asserted in a test)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from pyrovae.data.shapes import SHAPES

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_shapes.py"


def _module():
    spec = importlib.util.spec_from_file_location("bench_shapes", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tiny_run_writes_outputs(tmp_path):
    mod = _module()
    record = mod.main(["--rounds", "2", "--threads", "1", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "shapes.json").read_text())
    assert saved == json.loads(json.dumps(record))
    assert saved["images"] == len(SHAPES.all_factors()) == 1800
    assert saved["image_shape"] == [1, 32, 32] and len(saved["seconds"]) == 2
    assert saved["summary"]["min"] <= saved["summary"]["median"] <= saved["summary"]["max"]
    assert saved["images_per_second"] == pytest.approx(1800 / saved["summary"]["median"])
    assert saved["machine"]["torch_threads"] == 1
    assert "| median (s) | min (s) | max (s) | images/s |" in (tmp_path / "shapes.md").read_text()


def test_bad_rounds_are_rejected():
    with pytest.raises(SystemExit):
        _module().parse_args(["--rounds", "0"])


def test_the_callers_thread_count_is_restored():
    threads = torch.get_num_threads()
    _module().main(["--rounds", "1", "--threads", str(threads + 1)])
    assert torch.get_num_threads() == threads
