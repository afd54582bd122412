"""Training objectives (ELBO variants) and beta / KL schedules.

Registries: :data:`OBJECTIVES` (``"trace"``, ``"meanfield"``) and
:data:`SCHEDULES` (``"constant"``, ``"linear"``, ``"cyclical"``).
"""

from __future__ import annotations

from ..registry import Registry

OBJECTIVES: Registry = Registry("objective")
SCHEDULES: Registry = Registry("beta schedule")

from .elbo import LossTerms, MeanFieldELBO, Objective, TraceELBO  # noqa: E402
from .freebits import FreeBitsELBO  # noqa: E402
from .iwae import IWAE, IWAEDReG  # noqa: E402
from .schedules import BetaSchedule, Constant, Cyclical, LinearWarmup, make_schedule  # noqa: E402

__all__ = [
    "OBJECTIVES",
    "SCHEDULES",
    "BetaSchedule",
    "Constant",
    "Cyclical",
    "FreeBitsELBO",
    "IWAE",
    "IWAEDReG",
    "LinearWarmup",
    "LossTerms",
    "MeanFieldELBO",
    "Objective",
    "TraceELBO",
    "make_schedule",
]
