"""Training: the SVI step, the trainer loop, checkpoints, early stopping, divergence
handling, mixed precision and data-parallel training."""

from .callbacks import EarlyStopping
from .checkpoint import load_checkpoint, load_resumable, save_checkpoint
from .interrupt import TrainingInterrupted
from .step import eval_step, make_adam, step_is_finite, train_step
from .trainer import DIVERGENCE_POLICIES, METRIC_COLUMNS, Trainer, TrainingError

__all__ = [
    "DIVERGENCE_POLICIES",
    "METRIC_COLUMNS",
    "EarlyStopping",
    "Trainer",
    "TrainingError",
    "TrainingInterrupted",
    "eval_step",
    "load_checkpoint",
    "load_resumable",
    "make_adam",
    "save_checkpoint",
    "step_is_finite",
    "train_step",
]
