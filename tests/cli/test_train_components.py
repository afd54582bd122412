"""Every registered component trains from the command line (one epoch, tiny networks)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pyrovae.cli import main
from pyrovae.guides import GUIDES
from pyrovae.likelihoods import LIKELIHOODS
from pyrovae.models import MODELS
from pyrovae.nets import DECODERS, ENCODERS
from pyrovae.objectives import OBJECTIVES, SCHEDULES
from pyrovae.priors import PRIORS

#: digits (grey levels in [0, 1]) mapped into each kind of likelihood support
SUPPORT_DATA = {
    "binary": lambda x: (x > 0.5).astype(np.float32),
    "unit": lambda x: x,
    "open-unit": lambda x: x.clip(0.01, 0.99),
    "real": lambda x: (x - 0.3) / 0.4,
    "8bit": lambda x: np.round(x * 255) / 255,
    "count": lambda x: np.round(x * 16),
}

CASES = (
    [("--prior", n) for n in PRIORS.names()]
    + [("--guide", n) for n in GUIDES.names()]
    + [("--likelihood", n) for n in LIKELIHOODS.names()]
    + [("--objective", n) for n in OBJECTIVES.names()]
    + [("--model", n) for n in MODELS.names()]
    # networks of their own grid only (any_data_shape = False) train from the CLI in
    # their own tests (tests/nets/)
    + [("--net", n) for n in ENCODERS.names() if getattr(DECODERS.get(n), "any_data_shape", True)]
    + [("--beta-schedule", n) for n in SCHEDULES.names()]
)


@pytest.mark.parametrize("flag, name", CASES, ids=[f"{f[2:]}={n}" for f, n in CASES])
def test_component_trains_from_cli(flag, name, digits, tmp_path, capsys):
    args = [
        "train",
        flag,
        name,
        "--epochs",
        "1",
        "--hidden",
        "16",
        "--latent-dim",
        "2",
        "--no-progress",
        "-o",
        str(tmp_path / "run"),
    ]
    if flag == "--likelihood":
        kind = LIKELIHOODS.get(name).support_kind
        x = SUPPORT_DATA[kind](digits.train[:200].numpy())
        np.save(tmp_path / "x.npy", x)
        args += ["--data", str(tmp_path / "x.npy")]
    if name.startswith("iwae"):
        args += ["--particles", "2"]
    if flag == "--prior" and PRIORS.get(name).conditional:
        args += ["--model", "cvae"]  # p(z | c) needs a conditional family
    assert main(args) == 0, capsys.readouterr().err
    assert (tmp_path / "run" / "checkpoint.pt").exists()
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "run"), "--particles", "2"]) == 0
    _check_evaluation(tmp_path / "run", capsys.readouterr().out)


def _check_evaluation(run, printed: str) -> None:
    """The printed evaluation JSON is the one written, with a finite ELBO (a finite
    reconstruction term and no ELBO for models without latent variables)."""
    from pyrovae.api import load

    has_latents = load(run).module_.has_latent_sites
    out = json.loads(printed)
    assert json.loads((run / "evaluation.json").read_text()) == out
    assert out["particles"] == 2 and out["n"] > 0 and math.isfinite(out["recon"])
    if has_latents:
        assert math.isfinite(out["elbo"]) and math.isfinite(out["kl"])
        assert out["elbo"] == pytest.approx(out["recon"] - out["kl"], rel=1e-6, abs=1e-4)
    else:
        assert out["elbo"] is None and out["kl"] == 0


def test_vamp_prior_on_the_hvae_top_layer_from_cli(tmp_path, capsys):
    base = ["train", "--model", "hvae", "--prior", "vamp", "--epochs", "1", "--hidden", "16"]
    base += ["--latent-dim", "4", "--no-progress", "-o"]
    # without --top-from-x the bottom-up guide has no q(z2|x): one clear line, no run
    assert main([*base, str(tmp_path / "bad")]) != 0
    err = capsys.readouterr().err.strip()
    assert "set top_from_x" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "bad" / "checkpoint.pt").exists()
    assert main([*base, str(tmp_path / "run"), "--top-from-x"]) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "run"), "--particles", "2"]) == 0
    _check_evaluation(tmp_path / "run", capsys.readouterr().out)


def test_hvae_layer_networks_and_plateau_decay_from_cli(tmp_path, capsys):
    from pyrovae.api import load

    args = ["train", "--model", "hvae", "--epochs", "2", "--hidden", "16", "--latent-dim", "4"]
    args += ["--layer-depth", "2", "--layer-gated", "--layer-hidden", "8"]
    args += ["--lr-decay-patience", "3", "--lr-decay-factor", "0.25"]
    args += ["--no-progress", "-o", str(tmp_path / "run")]
    assert main(args) == 0, capsys.readouterr().err
    est = load(tmp_path / "run")
    assert (est.layer_depth, est.layer_gated, est.layer_hidden) == (2, True, 8)
    assert (est.lr_decay_patience, est.lr_decay_factor) == (3, 0.25)
    assert type(est.module_.p_z1.net[1]).__name__ == "GatedLinear"
    assert main([*args[:-1], str(tmp_path / "bad"), "--lr-decay-factor", "2"]) != 0
    assert "lr_decay_factor" in capsys.readouterr().err
