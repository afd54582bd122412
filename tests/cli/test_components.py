"""`pyrovae components`: every registry and every name in it."""

from __future__ import annotations

import importlib


def test_components_lists_every_registry(capsys, run_cli):
    out = run_cli(capsys, ["components"])
    for heading, path in (
        ("model families", "pyrovae.models.MODELS"),
        ("priors", "pyrovae.priors.PRIORS"),
        ("likelihoods", "pyrovae.likelihoods.LIKELIHOODS"),
        ("guides", "pyrovae.guides.GUIDES"),
        ("networks", "pyrovae.nets.ENCODERS"),
        ("objectives", "pyrovae.objectives.OBJECTIVES"),
        ("beta schedules", "pyrovae.objectives.SCHEDULES"),
        ("datasets", "pyrovae.data.DATASETS"),
        ("scalings", "pyrovae.data.SCALERS"),
    ):
        assert f"{heading}:" in out
        mod, name = path.rsplit(".", 1)
        for component in getattr(importlib.import_module(mod), name).names():
            assert f"\n  {component} " in out, component
    for name in ("vae", "ae", "dae", "gaussian", "bernoulli", "digits", "standardize"):
        assert f"  {name} " in out
