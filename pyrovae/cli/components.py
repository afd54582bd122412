"""``pyrovae components``: the registered components, as a list or as the markdown table of
docs/architecture.md."""

from __future__ import annotations

import argparse
import importlib

from . import args as shared

#: Every registry, in the order ``pyrovae components`` lists them: a title and the
#: registry's dotted path.
REGISTRIES = (
    ("model families", "pyrovae.models.MODELS"),
    ("estimators", "pyrovae.estimators.ESTIMATORS"),
    ("priors", "pyrovae.priors.PRIORS"),
    ("likelihoods", "pyrovae.likelihoods.LIKELIHOODS"),
    ("guides", "pyrovae.guides.GUIDES"),
    ("decoder-weight posteriors", "pyrovae.models.bayesian.WEIGHT_POSTERIORS"),
    ("networks", "pyrovae.nets.ENCODERS"),
    ("mask encoders", "pyrovae.nets.MASK_ENCODERS"),
    ("activations", "pyrovae.nets.ACTIVATIONS"),
    ("objectives", "pyrovae.objectives.OBJECTIVES"),
    ("beta schedules", "pyrovae.objectives.SCHEDULES"),
    ("dae corruptions", "pyrovae.models.CORRUPTIONS"),
    ("datasets", "pyrovae.data.DATASETS"),
    ("scalings", "pyrovae.data.SCALERS"),
    ("binarizations", "pyrovae.data.binarize.BINARIZATIONS"),
    ("conditioners", "pyrovae.inference.conditioning.CONDITIONERS"),
    ("experiment trackers", "pyrovae.training.loggers.LOGGERS"),
)


def registry(path: str):
    """The registry (or any object) at a dotted path, imported on first use."""
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def registry_table() -> str:
    """The registries as a markdown table (docs/architecture.md embeds it; a test
    keeps the two equal)."""
    lines = ["| registry | where | names |", "|---|---|---|"]
    for _, path in REGISTRIES:
        module, _, name = path.rpartition(".")
        names = ", ".join(f"`{n}`" for n in registry(path).names())
        lines.append(f"| `{name}` | `{module}` | {names} |")
    return "\n".join(lines) + "\n"


def register(sub) -> None:
    """Add the ``components`` verb."""
    p = shared.add_verb(sub, "components", cmd_components, "list the registered components")
    shared.add_switch(
        p, "--markdown", "print the registries as the markdown table of docs/architecture.md"
    )


def cmd_components(args: argparse.Namespace) -> int:
    """List every registered prior, likelihood, guide, network, objective, beta
    schedule, model family, corruption, dataset and scaling."""
    if args.markdown:
        print(registry_table(), end="")
        return 0
    for title, path in REGISTRIES:
        print(f"{title}:")
        for name, obj in registry(path).items():
            doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
            print(f"  {name:<16} {doc[0] if doc else ''}")
    return 0
