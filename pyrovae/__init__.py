"""pyrovae: variational autoencoders as Pyro probabilistic programs.

The public Python API is importable from the top level (``pyrovae.VAE``,
``pyrovae.load``, ...) as well as from :mod:`pyrovae.api`. The names are resolved on
first use (PEP 562), so that ``import pyrovae`` (and the ``pyrovae`` command, until a
verb runs) does not import torch and Pyro.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: The names :mod:`pyrovae.api` exports, available here on first use (a test keeps the
#: two lists equal).
_API = tuple(
    (
        "AE CVAE DAE ESTIMATORS HVAE M2 VAE Estimator estimator_params from_checkpoint load "
        "prior_module resume"
    ).split()
)

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(importlib.import_module(".api", __name__), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
