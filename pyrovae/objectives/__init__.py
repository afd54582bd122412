"""Training objectives (ELBO variants) and beta / KL schedules.

Every objective keeps one contract (:mod:`.base`):
``objective(model, guide, batch, beta=1.0) -> LossTerms``. Registries:
:data:`OBJECTIVES` (``"trace"``, ``"meanfield"``, ``"enum"``, ``"freebits"``,
``"iwae"``, ``"iwae-dreg"``) and :data:`SCHEDULES` (``"constant"``, ``"linear"``, ``"cyclical"``).
"""

from __future__ import annotations

from ..registry import Registry

OBJECTIVES: Registry = Registry("objective")
SCHEDULES: Registry = Registry("beta schedule")

from .base import LossTerms, Objective  # noqa: E402
from .elbo import MeanFieldELBO, PyroELBO, TraceELBO  # noqa: E402
from .enum import EnumELBO  # noqa: E402
from .freebits import FreeBitsELBO  # noqa: E402
from .iwae import IWAE, IWAEDReG  # noqa: E402
from .schedules import BetaSchedule, Constant, Cyclical, LinearWarmup, make_schedule  # noqa: E402

__all__ = [
    "OBJECTIVES",
    "SCHEDULES",
    "BetaSchedule",
    "Constant",
    "Cyclical",
    "EnumELBO",
    "FreeBitsELBO",
    "IWAE",
    "IWAEDReG",
    "LinearWarmup",
    "LossTerms",
    "MeanFieldELBO",
    "Objective",
    "PyroELBO",
    "TraceELBO",
    "make_schedule",
]
