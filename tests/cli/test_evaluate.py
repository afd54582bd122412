"""`pyrovae evaluate RUN`: the held-out ELBO and its terms as JSON, to the run folder or
--output."""

from __future__ import annotations

import json
import math

import pytest


def test_evaluate(run_copy, capsys, run_cli, strict_json):
    result = strict_json(run_cli(capsys, ["evaluate", run_copy, "--particles", "2"]))
    assert json.loads((run_copy / "evaluation.json").read_text()) == result
    assert result["split"] == "test" and result["n"] == 180 and result["model"] == "vae"
    for key in ("elbo", "recon", "kl", "elbo_se", "recon_se", "kl_se"):
        assert math.isfinite(result[key]), key
    assert result["elbo"] == pytest.approx(result["recon"] - result["kl"], rel=1e-5)
    assert result["kl"] >= 0 and result["elbo"] < 0


def test_evaluate_other_split_to_other_file(run_copy, tmp_path, capsys, run_cli, strict_json):
    out = tmp_path / "reports" / "val.json"
    result = strict_json(
        run_cli(capsys, ["evaluate", run_copy / "checkpoint.pt", "--split", "val", "--output", out])
    )
    assert result["split"] == "val" and result["n"] == 162
    assert json.loads(out.read_text()) == result
    assert not (run_copy / "evaluation.json").exists()
