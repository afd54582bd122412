"""Training: the SVI step, the trainer loop, checkpoints and early stopping."""

from .callbacks import EarlyStopping
from .checkpoint import load_checkpoint, save_checkpoint
from .step import eval_step, train_step
from .trainer import METRIC_COLUMNS, Trainer, TrainingError

__all__ = [
    "METRIC_COLUMNS",
    "EarlyStopping",
    "Trainer",
    "TrainingError",
    "eval_step",
    "load_checkpoint",
    "save_checkpoint",
    "train_step",
]
