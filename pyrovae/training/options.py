"""The trainer's settings as one typed object.

:class:`TrainingOptions` holds what the training loop and its standard callbacks need.
Names, defaults and value domains are those of :data:`pyrovae.config.OPTIONS` (the one
table behind the estimators' parameters, the TOML keys and the CLI flags): a field's
default is its option's default, and every value is checked with
:func:`pyrovae.config.check_value`. Estimators build it from their parameters with
:meth:`TrainingOptions.from_params`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from ..config import OPTIONS_BY_NAME, check_value, coerce


def _option(name: str) -> Any:
    """A dataclass field whose default is option ``name``'s default."""
    return field(default=OPTIONS_BY_NAME[name].default)


@dataclass(frozen=True)
class TrainingOptions:
    """Settings of :class:`~pyrovae.training.Trainer` and its standard callbacks
    (:func:`~pyrovae.training.callbacks.standard_callbacks`); see each option's help in
    :data:`pyrovae.config.OPTIONS`.

    The loop itself reads ``epochs``, ``batch_size``, ``seed`` (the shuffling stream),
    ``time_budget`` and ``budget_clock``, and ``amp``; the callbacks read the rest:
    ``patience`` (early stopping), ``lr_decay_patience`` and ``lr_decay_factor``
    (plateau decay), ``checkpoint_every`` (checkpoints inside an epoch),
    ``on_divergence``, ``divergence_retries`` and ``rollback_lr_factor`` (rollback),
    ``progress`` (the progress bar), and ``log`` and ``log_images_every`` (the
    experiment trackers, :mod:`pyrovae.training.loggers`); ``mask_rate`` drops
    observed entries of each training minibatch
    (:meth:`~pyrovae.training.Trainer.drop_entries`). ``amp`` is the setting in effect
    (an estimator resolves it against the device before building the options).
    """

    epochs: int = _option("epochs")
    batch_size: int = _option("batch_size")
    patience: int = _option("patience")
    lr_decay_patience: int = _option("lr_decay_patience")
    lr_decay_factor: float = _option("lr_decay_factor")
    seed: int = _option("seed")
    time_budget: float | None = _option("time_budget")
    budget_clock: str = _option("budget_clock")
    amp: bool = _option("amp")
    checkpoint_every: int = _option("checkpoint_every")
    on_divergence: str = _option("on_divergence")
    divergence_retries: int = _option("divergence_retries")
    rollback_lr_factor: float = _option("rollback_lr_factor")
    mask_rate: float = _option("mask_rate")
    progress: bool = False
    log: tuple[str, ...] = ()
    log_images_every: int = _option("log_images_every")

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name in OPTIONS_BY_NAME:
                check_value(f.name, getattr(self, f.name))
        object.__setattr__(self, "log", tuple(coerce("log", self.log or [])))

    @classmethod
    def from_params(cls, params: Mapping[str, Any], **overrides: Any) -> TrainingOptions:
        """The options among ``params`` (an estimator's parameters, or any mapping of
        option names), with ``overrides`` on top; missing ones take their defaults."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in params.items() if k in names}
        values.update(overrides)
        return cls(**values)
