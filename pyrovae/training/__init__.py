"""Training: the SVI step, the trainer loop and its callbacks, checkpoints, mixed
precision and data-parallel training.

:class:`Trainer` runs the loop alone; early stopping, plateau decay, divergence
rollback, metrics, checkpoints, provenance and the progress bar are callbacks
(:mod:`.callbacks`), configured by one :class:`TrainingOptions`; every step is
:func:`train_step`.
"""

from .callbacks import (
    Callback,
    Checkpointing,
    DivergenceRollback,
    EarlyStopping,
    MetricsWriter,
    PlateauDecay,
    ProgressBar,
    Provenance,
    TrainingError,
    standard_callbacks,
)
from .checkpoint import load_checkpoint, load_resumable, save_checkpoint
from .interrupt import TrainingInterrupted
from .options import TrainingOptions
from .step import StepTerms, eval_step, make_adam, step_is_finite, train_step
from .trainer import DIVERGENCE_POLICIES, METRIC_COLUMNS, Trainer

__all__ = [
    "DIVERGENCE_POLICIES",
    "METRIC_COLUMNS",
    "Callback",
    "Checkpointing",
    "DivergenceRollback",
    "EarlyStopping",
    "MetricsWriter",
    "PlateauDecay",
    "ProgressBar",
    "Provenance",
    "StepTerms",
    "Trainer",
    "TrainingError",
    "TrainingInterrupted",
    "TrainingOptions",
    "eval_step",
    "load_checkpoint",
    "load_resumable",
    "make_adam",
    "save_checkpoint",
    "standard_callbacks",
    "step_is_finite",
    "train_step",
]
