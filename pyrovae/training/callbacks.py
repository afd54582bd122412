"""What happens around the training loop, as callbacks with one small interface.

The trainer (:class:`~pyrovae.training.Trainer`) runs the loop; a :class:`Callback`
reacts to its events, in the order of the trainer's callback list:

* ``on_fit_start(trainer)``: training starts (the budget clock is running);
* ``on_step_end(trainer)``: an optimizer step was taken and counted
  (``trainer.step``; ``trainer.mid_epoch`` tells whether steps of the epoch remain);
* ``on_epoch_end(trainer)``: an epoch was validated and its row appended to
  ``trainer.history`` (``trainer.monitored`` is the loss that early stopping watches);
* ``on_divergence(trainer, event)``: the loss or a gradient of a step was NaN or
  infinite (the step was skipped). A callback may restore an earlier state and raise
  :class:`Rollback`; if none raises, the trainer stops with a one-line
  :class:`~pyrovae.training.TrainingError`;
* ``on_fit_end(trainer)``: training ends, normally or by an exception (for clean-up).

A callback with state that a resumed run needs names the checkpoint entry that holds it
(``state_key``) and implements ``state_dict`` / ``load_state_dict``; the trainer saves
it with its own state, in the checkpoint format of earlier versions.

:func:`standard_callbacks` builds the list that the estimators use from
:class:`~pyrovae.training.options.TrainingOptions`: early stopping (which also keeps
the best weights), plateau decay of the learning rate, the progress bar, the run
folder's provenance (``run.json``), metrics (``metrics.csv``) and checkpoints, the
divergence rollback, and the experiment trackers asked for (:mod:`.loggers`).
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import PyrovaeError
from ..runs import write_metrics
from .checkpoint import remove_stale_temporaries
from .options import TrainingOptions
from .provenance import record_session

if TYPE_CHECKING:  # pragma: no cover
    from .trainer import Trainer

logger = logging.getLogger(__name__)


class TrainingError(PyrovaeError, RuntimeError):
    """Training cannot continue (for example the loss became NaN)."""


class Rollback(Exception):
    """Raised by a callback that restored an earlier state: the trainer goes on from it."""


@dataclass(frozen=True)
class Divergence:
    """A step whose loss or gradient was not finite.

    Attributes
    ----------
    where : str
        ``"epoch E, step S of N"``.
    what : str
        ``"the loss became nan"`` or ``"a gradient became NaN/inf"``.
    """

    where: str
    what: str


class Callback:
    """Base class: every hook does nothing (see the module docstring)."""

    #: The checkpoint entry holding this callback's state (None: it has none).
    state_key: str | None = None

    def on_fit_start(self, trainer: Trainer) -> None:
        """Training starts."""

    def on_step_end(self, trainer: Trainer) -> None:
        """An optimizer step was taken."""

    def on_epoch_end(self, trainer: Trainer) -> None:
        """An epoch ended (validated, its row in ``trainer.history``)."""

    def on_divergence(self, trainer: Trainer, event: Divergence) -> None:
        """A step diverged (and was skipped)."""

    def on_fit_end(self, trainer: Trainer) -> None:
        """Training ends, normally or not."""

    def state_dict(self) -> Any:
        """Plain data to resume from."""
        return None

    def load_state_dict(self, state: Any) -> None:
        """Restore from :meth:`state_dict`."""


class EarlyStopping(Callback):
    """Watch the monitored loss; keep the best weights; stop after ``patience`` epochs
    without improvement of at least ``min_delta``.

    Used as a callback it updates itself at each epoch end with ``trainer.monitored``
    (the validation loss, or the training loss without validation data), stores the
    weights of a better epoch as ``trainer.best_state`` (the trainer restores them when
    training ends) and sets ``trainer.stopped_early``. It can also be used on its own
    (:meth:`update`, :attr:`should_stop`).

    Parameters
    ----------
    patience : int
        Epochs without improvement before stopping; 0 disables stopping (the best
        weights are still kept).
    min_delta : float
        Minimum decrease that counts as an improvement.

    Notes
    -----
    Epochs are only compared while the beta schedule has settled; during a warm-up the
    objective itself changes, so its value is not comparable, and every epoch counts as
    the best so far.
    """

    state_key = "early_stopping"

    def __init__(self, patience: int = 30, min_delta: float = 0.0) -> None:
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.best = math.inf
        self.bad_epochs = 0
        self.improved = False

    def update(self, value: float, comparable: bool = True) -> bool:
        """Record ``value``; return True if it is the best so far."""
        if not comparable:
            self.best = math.inf
            self.bad_epochs = 0
            self.improved = True
            return True
        self.improved = value < self.best - self.min_delta
        if self.improved:
            self.best = value
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        return self.improved

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.bad_epochs >= self.patience

    def restart(self) -> None:
        """Count epochs without improvement afresh (a finished run given more epochs)."""
        self.bad_epochs = 0

    def on_epoch_end(self, trainer: Trainer) -> None:
        if self.update(trainer.monitored, trainer.schedule.settled(trainer.epoch)):
            trainer.best_state = copy.deepcopy(trainer.module.state_dict())
            trainer.best_epoch = trainer.epoch
        # every rank has the same numbers; make sure they agree
        trainer.stopped_early = bool(trainer.broadcast(self.should_stop))

    def state_dict(self) -> dict:
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.best = float(state["best"])
        self.bad_epochs = int(state["bad_epochs"])


class PlateauDecay(Callback):
    """Multiply the learning rate by ``factor`` after every ``patience`` epochs without a
    better monitored loss, as ``torch.optim.lr_scheduler.ReduceLROnPlateau`` does.

    The epochs are counted by ``stopper`` (the run's :class:`EarlyStopping`, earlier in
    the callback list), so set early stopping's patience to a multiple of this one to
    give each decayed rate its time.
    """

    def __init__(self, patience: int, factor: float, stopper: EarlyStopping) -> None:
        self.patience = int(patience)
        self.factor = float(factor)
        self.stopper = stopper

    def on_epoch_end(self, trainer: Trainer) -> None:
        bad = self.stopper.bad_epochs
        if self.patience and not self.stopper.improved and bad % self.patience == 0:
            trainer.set_lr_scale(trainer.lr_scale * self.factor)
            logger.info(
                "epoch %d: no better loss for %d epochs; learning rate now %.3g",
                trainer.epoch,
                bad,
                trainer.learning_rate,
            )


class DivergenceRollback(Callback):
    """On a diverged step, restore the state of the last save point and go on with the
    learning rate times ``lr_factor``, at most ``retries`` times per run.

    The save points are the start of training, every epoch end and, with ``every`` > 0,
    every ``every``-th step inside an epoch: where the checkpoints are written, so the
    state restored is the last checkpoint's (kept in memory, also without a run folder).
    Once the retries are used up, training stops with a one-line error.
    """

    def __init__(self, retries: int, lr_factor: float, every: int = 0) -> None:
        self.retries = int(retries)
        self.lr_factor = float(lr_factor)
        self.every = int(every)
        self._snapshot: dict | None = None

    def _take(self, trainer: Trainer) -> None:
        self._snapshot = trainer.snapshot()

    on_fit_start = _take
    on_epoch_end = _take

    def on_step_end(self, trainer: Trainer) -> None:
        if self.every > 0 and trainer.step % self.every == 0 and trainer.mid_epoch:
            self._take(trainer)

    def on_divergence(self, trainer: Trainer, event: Divergence) -> None:
        tried = len(trainer.rollbacks)
        if tried >= self.retries or self._snapshot is None:
            raise TrainingError(
                f"training diverged in {event.where} ({event.what}) after {tried} "
                f"rollback(s) with the learning rate lowered to {trainer.learning_rate:g}; "
                "giving up (the last good checkpoint is kept)"
            )
        done = [*trainer.rollbacks]
        scale = trainer.lr_scale * self.lr_factor
        trainer.restore(self._snapshot)
        trainer.set_lr_scale(scale)
        record = {"epoch": trainer.epoch, "step": trainer.step, "diverged_at": event.where}
        trainer.rollbacks = [*done, {**record, "lr": trainer.learning_rate}]
        (logger.warning if trainer.is_main else logger.debug)(
            "training diverged in %s (%s); rolled back to step %d (epoch %d) with the "
            "learning rate lowered to %g (rollback %d of at most %d)",
            event.where,
            event.what,
            trainer.step,
            trainer.epoch,
            trainer.learning_rate,
            len(trainer.rollbacks),
            self.retries,
        )
        raise Rollback


class Checkpointing(Callback):
    """Write the resumable checkpoint into the run folder at every epoch end and, with
    ``every`` > 0, every ``every``-th step inside an epoch (a mid-epoch checkpoint holds
    the position in the epoch). Every rank calls it under ``torch.distributed`` (the
    state is gathered); rank 0 writes. Removes temporary files that an interrupted write
    left behind when training starts."""

    def __init__(self, every: int = 0) -> None:
        self.every = int(every)

    def on_fit_start(self, trainer: Trainer) -> None:
        if trainer.run_dir is not None and trainer.is_main:
            for tmp in remove_stale_temporaries(trainer.run_dir):
                logger.debug("removed %s, left by an interrupted write", tmp)

    def on_step_end(self, trainer: Trainer) -> None:
        if self.every > 0 and trainer.step % self.every == 0 and trainer.mid_epoch:
            trainer.checkpoint()

    def on_epoch_end(self, trainer: Trainer) -> None:
        trainer.checkpoint()


class MetricsWriter(Callback):
    """Rewrite ``metrics.csv`` from the history at every epoch end (atomic), and when
    training starts, so that rows of epochs a crash lost are dropped on resume."""

    def on_fit_start(self, trainer: Trainer) -> None:
        if trainer.history:
            self.on_epoch_end(trainer)

    def on_epoch_end(self, trainer: Trainer) -> None:
        if trainer.run_dir is not None and trainer.is_main:
            write_metrics(trainer.run_dir, trainer.history)


class Provenance(Callback):
    """Append this session's record (code, machine, starting epoch, budget) to the run
    folder's ``run.json`` (:mod:`pyrovae.training.provenance`)."""

    def on_fit_start(self, trainer: Trainer) -> None:
        if trainer.run_dir is None or not trainer.is_main:
            return
        record_session(
            trainer.run_dir,
            from_epoch=trainer.epoch,
            time_used=trainer.time_used,
            time_budget=trainer.clock.budget,
            budget_clock=trainer.clock.clock,
            world_size=trainer.dist.world_size if trainer.dist is not None else 1,
            device=str(trainer.device),
            amp=trainer.amp,
        )


class ProgressBar(Callback):
    """A tqdm bar over epochs (rank 0 only)."""

    def __init__(self) -> None:
        self.bar = None

    def on_fit_start(self, trainer: Trainer) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=trainer.options.epochs,
            initial=trainer.epoch,
            disable=not trainer.is_main,
            unit="epoch",
            dynamic_ncols=True,
        )

    def on_epoch_end(self, trainer: Trainer) -> None:
        row = trainer.history[-1]
        self.bar.n = trainer.epoch  # after a rollback the count goes back
        self.bar.set_postfix(
            loss=f"{row['train_loss']:.2f}", val=f"{row['val_loss']:.2f}", beta=f"{row['beta']:.3g}"
        )

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def standard_callbacks(options: TrainingOptions) -> list[Callback]:
    """The callbacks every estimator trains with, in the order they run."""
    stopper = EarlyStopping(options.patience)
    callbacks: list[Callback] = [
        stopper,
        PlateauDecay(options.lr_decay_patience, options.lr_decay_factor, stopper),
    ]
    if options.progress:
        callbacks.append(ProgressBar())
    callbacks += [Provenance(), MetricsWriter(), Checkpointing(options.checkpoint_every)]
    if options.on_divergence == "rollback":
        callbacks.append(
            DivergenceRollback(
                options.divergence_retries, options.rollback_lr_factor, options.checkpoint_every
            )
        )
    if options.log:
        from .loggers import make_loggers

        callbacks += make_loggers(options.log, options.log_images_every)
    return callbacks
