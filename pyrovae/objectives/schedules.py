r"""Schedules for the KL weight beta.

A schedule maps training progress ``t`` (in epochs, fractional within an
epoch; the trainer evaluates it at the middle of each step, so t > 0) to
beta > 0. ``poutine.scale`` needs a positive scale, and beta = 0 would be an
autoencoder, so every schedule is floored at a tiny positive value.

* constant: beta(t) = beta.
* linear warm-up (Bowman et al. 2016; Sonderby et al. 2016):
  beta(t) = beta * min(1, t / warmup).
* cyclical (Fu et al. 2019): with period P and ramp fraction R,
  tau = (t mod P) / P, beta(t) = beta * min(1, tau / R).
"""

from __future__ import annotations

import math

from ..errors import ConfigError
from . import SCHEDULES

#: Smallest beta a schedule returns (poutine.scale needs scale > 0).
MIN_BETA = 1e-6


class BetaSchedule:
    """Base class: callable ``t -> beta``.

    Parameters
    ----------
    beta : float
        Target (maximum) weight of the KL term, > 0.
    """

    def __init__(self, beta: float = 1.0) -> None:
        beta = float(beta)
        if not (beta > 0 and math.isfinite(beta)):
            raise ConfigError(
                f"beta must be a finite number > 0; got {beta} "
                "(beta = 0 drops the KL term: use --model ae)"
            )
        self.beta = beta

    def value(self, t: float) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, t: float) -> float:
        return max(self.value(float(t)), MIN_BETA)

    def settled(self, t: float) -> bool:
        """True once beta no longer changes after progress ``t`` (early stopping may act)."""
        return True

    def to_dict(self) -> dict:
        """Plain data for configs and checkpoints."""
        return {"beta_schedule": self.registry_name, "beta": self.beta}

    registry_name = "custom"


@SCHEDULES.register("constant")
class Constant(BetaSchedule):
    """beta(t) = beta."""

    def __init__(self, beta: float = 1.0, warmup: float = 0.0) -> None:
        super().__init__(beta)

    def value(self, t: float) -> float:
        return self.beta


def _check_period(name: str, value: float) -> float:
    value = float(value)
    if not value > 0:
        raise ConfigError(f"the {name} schedule needs beta_warmup > 0 epochs; got {value}")
    return value


@SCHEDULES.register("linear")
class LinearWarmup(BetaSchedule):
    """beta(t) = beta * min(1, t / warmup): KL annealing from 0 to beta.

    Parameters
    ----------
    beta : float
        Final weight.
    warmup : float
        Epochs to reach ``beta``.
    """

    def __init__(self, beta: float = 1.0, warmup: float = 10.0) -> None:
        super().__init__(beta)
        self.warmup = _check_period("linear", warmup)

    def value(self, t: float) -> float:
        return self.beta * min(1.0, t / self.warmup)

    def settled(self, t: float) -> bool:
        return t >= self.warmup

    def to_dict(self) -> dict:
        return {**super().to_dict(), "beta_warmup": self.warmup}


@SCHEDULES.register("cyclical")
class Cyclical(BetaSchedule):
    """Cyclical annealing: repeat a linear ramp every ``warmup`` epochs.

    Parameters
    ----------
    beta : float
        Weight reached in each cycle.
    warmup : float
        Period P of a cycle, in epochs.
    ratio : float
        Fraction R of each cycle spent ramping up (default 0.5).
    """

    def __init__(self, beta: float = 1.0, warmup: float = 10.0, ratio: float = 0.5) -> None:
        super().__init__(beta)
        self.period = _check_period("cyclical", warmup)
        if not 0 < float(ratio) <= 1:
            raise ConfigError(f"cyclical ratio must be in (0, 1]; got {ratio}")
        self.ratio = float(ratio)

    def value(self, t: float) -> float:
        tau = (t % self.period) / self.period
        return self.beta * min(1.0, tau / self.ratio)

    def settled(self, t: float) -> bool:
        return False

    def to_dict(self) -> dict:
        return {**super().to_dict(), "beta_warmup": self.period}


def make_schedule(beta, schedule: str = "constant", warmup: float = 10.0) -> BetaSchedule:
    """Build a schedule from a number + name, or pass a :class:`BetaSchedule` through."""
    if isinstance(beta, BetaSchedule):
        return beta
    try:
        beta = float(beta)
    except (TypeError, ValueError):
        raise ConfigError(f"beta must be a number or a BetaSchedule; got {beta!r}") from None
    return SCHEDULES.get(schedule)(beta=beta, warmup=warmup)
