"""Early stopping on a monitored validation loss."""

from __future__ import annotations

import math


class EarlyStopping:
    """Stop after ``patience`` epochs without improvement of a monitored loss.

    Parameters
    ----------
    patience : int
        Epochs without improvement before stopping; 0 disables stopping.
    min_delta : float
        Minimum decrease that counts as an improvement.

    Notes
    -----
    The trainer only counts epochs while the beta schedule has settled; during
    a warm-up the objective itself changes, so its value is not comparable.
    """

    def __init__(self, patience: int = 30, min_delta: float = 0.0) -> None:
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.best = math.inf
        self.bad_epochs = 0

    def update(self, value: float, comparable: bool = True) -> bool:
        """Record ``value``; return True if it is the best so far."""
        if not comparable:
            self.best = math.inf
            self.bad_epochs = 0
            return True
        if value < self.best - self.min_delta:
            self.best = value
            self.bad_epochs = 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.bad_epochs >= self.patience

    def state_dict(self) -> dict:
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.best = float(state["best"])
        self.bad_epochs = int(state["bad_epochs"])
